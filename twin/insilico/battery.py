"""Run an in-silico battery (config) on a ResponseModel into a folder, resumably.

``run_battery(config, model, out_dir)`` writes, one file per experiment (each atomically, so
an interrupted run leaves only whole files and a re-run skips the finished ones)::

    OUT_DIR/tuning.h5 rf.h5 mei.h5 vei.h5 bipartite.h5   xarray Datasets on dim ``unit``
    OUT_DIR/profiles.h5                                  twin.similarity profile
    OUT_DIR/config.json  OUT_DIR/provenance.json  OUT_DIR/summary.json
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import xarray as xr

from twin.config import to_dict
from twin.insilico.common import load_dataset, save_dataset, scans, unit_table
from twin.insilico.config import InsilicoConfig
from twin.insilico.mei import mei_rows
from twin.errors import InputError
from twin.io import write_text_atomic

ORDER = ("tuning", "rf", "mei", "vei", "bipartite", "profiles")
_NEEDS = {"vei": ("mei",), "bipartite": ("mei",)}


def _summary(name: str, ds: xr.Dataset) -> dict[str, Any]:
    def med(v):
        v = np.asarray(ds[v].values, np.float64)
        return float(np.nanmedian(v)) if v.size else None

    if name == "tuning":
        return {"median_gosi": med("gosi"), "median_gdsi": med("gdsi"), "fraction_tuned": med("tuned"),
                "median_f1_f0": med("f1_f0")}
    if name == "rf":
        out = {"median_rf_sigma_deg": med("rf_sigma")}
        if "readout_distance" in ds:
            out["median_readout_distance_deg"] = med("readout_distance")
        return out
    if name == "mei":
        return {"median_mei_response": med("mei_response"), "median_random_response": med("random_response")}
    if name == "vei":
        return {"median_vei_reached": med("vei_reached"), "median_vei_diversity": med("vei_diversity")}
    if name == "bipartite":
        return {"median_bipartite_index": med("bipartite_index")}
    return {"n_units": int(ds.sizes["unit"])}


def run_battery(config: InsilicoConfig, model, out_dir: str | os.PathLike, *, progress: bool | None = None,
                inputs: Iterable[str | os.PathLike] = (), metrics: str | os.PathLike | None = None,
                model_tag: str | None = None) -> Path:
    """Run ``config.experiments`` on ``model`` into ``out_dir``; finished experiments are skipped.

    Args:
      config: the battery (seeded: the same seed gives identical numbers).
      model: any :class:`twin.response_model.ResponseModel`.
      out_dir: output folder (created).
      progress: tqdm bars (default ``config.progress``).
      inputs: paths recorded (with their hashes) in the provenance.
      metrics: optional ``twin evaluate`` metrics.h5; its natural-movie ``cc_abs, cc_max,
        cc_norm`` go into profiles.h5 (the connectomics quality filter).
      model_tag: what the model is (e.g. ``"planted neurons: observed"``), kept in config.json as
        ``model`` and checked on resume, so a folder of one model is never completed with another's.
    Returns:
      ``out_dir`` as a Path.
    """
    from tqdm.auto import tqdm

    from twin.insilico.invariance import run_bipartite
    from twin.insilico.mei import run_mei, run_vei
    from twin.insilico.profiles import build_profiles
    from twin.insilico.rf import run_rf
    from twin.insilico.tuning import run_tuning
    from twin.provenance import provenance

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    show = config.progress if progress is None else progress
    cfg_dict = to_dict(config)
    if model_tag is not None:
        cfg_dict["model"] = model_tag
    old_path = out / "config.json"
    if old_path.is_file():
        old = json.loads(old_path.read_text())
        same = {k: v for k, v in old.items() if k not in ("progress", "experiments")} == \
            {k: v for k, v in cfg_dict.items() if k not in ("progress", "experiments")}
        if not same:
            got = (f"model {old.get('model', 'untagged')!r}, now {model_tag!r}" if old.get("model") != model_tag
                   else "a different config")
            raise InputError(old_path, "config", "the same battery config and model as the run being resumed "
                             "(use a new --out folder for a different config)", got)
    write_text_atomic(out / "config.json", json.dumps(cfg_dict, indent=2))
    inputs = list(inputs) + ([metrics] if metrics is not None else [])
    write_text_atomic(out / "provenance.json", json.dumps(provenance(cfg_dict, inputs), indent=2))
    units = unit_table(model, scans(model, config.recording_ids), config.max_units)
    wanted = [e for e in ORDER if e in config.experiments or any(e in _NEEDS.get(x, ()) for x in config.experiments)]
    results: dict[str, xr.Dataset] = {}
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary["n_units"] = int(len(units))
    seeds = {e: int(s) for e, s in zip(ORDER, np.random.SeedSequence(config.seed).generate_state(len(ORDER)))}
    bar = tqdm(wanted, desc="insilico", disable=not show, unit="exp")
    for name in bar:
        bar.set_postfix_str(name)
        path = out / f"{name}.h5"
        if path.is_file():
            results[name] = load_dataset(path)
            continue
        seed = seeds[name]
        # per-neuron work (MEIs, VEIs: the first mei.max_units neurons of each scan) gets its own
        # bar; the stimulus batteries serve every neuron at once
        inner = None
        if name in ("mei", "vei"):
            inner = tqdm(total=len(mei_rows(units, config.mei.max_units)), desc=f"  {name}", disable=not show,
                         unit="unit", leave=False)
        if name == "tuning":
            ds = run_tuning(model, units, config.tuning, seed)
        elif name == "rf":
            ds = run_rf(model, units, config.rf, seed, config.mei.n_frames)
        elif name == "mei":
            ds = run_mei(model, units, config.mei, seed, inner)
        elif name == "vei":
            ds = run_vei(model, units, results["mei"], config.mei, config.vei, seed, inner)
        elif name == "bipartite":
            ds = run_bipartite(model, units, results["mei"], config.mei, config.bipartite, seed)
        else:
            ds = build_profiles(model, units, config.similarity, seed, results,
                                None if metrics is None else load_dataset(metrics))
        if inner is not None:
            inner.close()
        ds.attrs["provenance"] = json.dumps(provenance(cfg_dict, []))
        if name == "profiles":
            from twin.similarity import save_profiles

            save_profiles(ds, path)
        else:
            save_dataset(ds, path)
        results[name] = ds
        summary[name] = _summary(name, ds)
        write_text_atomic(summary_path, json.dumps(summary, indent=2))
    return out


def run_truth_batteries(config: InsilicoConfig, sim_dir: str | os.PathLike, out_dir: str | os.PathLike,
                        response: str = "observed", *, progress: bool | None = None,
                        inputs: Iterable[str | os.PathLike] = ()) -> tuple[Path, Path | None]:
    """The in-silico yardsticks of a simulation: ``config`` run on the planted neurons of
    ``sim_dir`` into ``out_dir/truth`` answering with ``response`` (see
    :mod:`twin.simulate.truth`), and, when that is ``"observed"``, the tuning experiment alone on
    the planted rates into ``out_dir/truth_rate`` (how well the twin's offset-sensitive indices
    recover the latent tuning rather than the recorded one). Returns (truth dir, rate dir or None).
    """
    import dataclasses

    from twin.simulate import load_truth_model

    out = Path(out_dir)
    truth = run_battery(config, load_truth_model(sim_dir, response), out / "truth", progress=progress,
                        inputs=inputs, model_tag=f"planted neurons: {response}")
    if response != "observed" or "tuning" not in config.experiments:
        return truth, None
    rate_cfg = dataclasses.replace(config, experiments=("tuning",))
    rate = run_battery(rate_cfg, load_truth_model(sim_dir, "rate"), out / "truth_rate", progress=progress,
                       inputs=inputs, model_tag="planted neurons: rate")
    return truth, rate
