"""The real stages of ``twin run``, built from a :class:`PipelineConfig`.

Each stage function takes a :class:`twin.pipeline.runner.StageContext` and calls the public API
of its package (imports happen inside, so ``twin --help`` stays fast):

    simulate  twin.simulate.simulate(SimConfig, OUT/simulate)  (package function; code in twin.simulate.mouse)
    import    twin.data importers -> OUT/import/recordings/*.h5 (+ connectome/ copied)
    recordings  user Recording files linked under OUT/recordings/recordings (+ connectome/)
    train     twin.train.loop.train(TrainConfig, OUT/train)            (resumes from checkpoints)
    evaluate  twin.evaluate.evaluate_run(OUT/train, OUT/evaluate, truth=OUT/simulate)
    insilico  twin.insilico.run_battery(config, model, OUT/insilico); on simulated data also
              run_truth_batteries into OUT/insilico/truth (and truth_rate)
    analyze   twin.analysis.analyze(config, OUT/analyze)  (connectome, profiles, metrics filled in)
    report    twin.report.build_report(OUT, OUT/report)
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from twin.config import from_dict, to_dict
from twin.errors import InputError, TwinError
from twin.pipeline.config import PipelineConfig, resolve_file, stage_toml
from twin.pipeline.runner import Stage, StageContext


def _need(modules: str | tuple[str, ...], *names: str) -> Any:
    """The first of ``names`` found in ``modules``; a clear error when that part of twin is absent."""
    modules = (modules,) if isinstance(modules, str) else modules
    for module in modules:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                continue
            raise
        for n in names:
            if hasattr(mod, n):
                return getattr(mod, n)
    raise TwinError(f"pipeline: none of {list(names)} found in {list(modules)}; is that part of twin built?")


def _fingerprint(paths: list[Path]) -> list[list[Any]]:
    """(path, size, mtime_ns) of every file under ``paths``: cheap change detection for user data."""
    out = []
    for p in paths:
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        out.extend([str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files)
    return out


# ------------------------------------------------------------------ data stages
def simulate_stage(cfg: PipelineConfig, base: Path) -> Stage:
    from twin.simulate.config import load_sim_config, preset

    d = cfg.data
    overrides = list(d.set)
    if not any(s.split("=", 1)[0].strip() == "seed" for s in overrides):
        overrides.insert(0, f"seed={cfg.seed}")
    if d.config:
        sim = load_sim_config(resolve_file(base, d.config, "data.config"), overrides, base=d.preset)
    else:
        sim = preset(d.preset, overrides)
    section = to_dict(sim)

    def run(ctx: StageContext) -> dict[str, Any]:
        import json

        from twin.simulate import simulate

        simulate(sim, ctx.out_dir, progress=ctx.progress)
        s = json.loads((ctx.out_dir / "summary.json").read_text())
        return {"n_neurons": s.get("n_neurons"), "scans": list(s.get("scans", {}))}

    return Stage("simulate", (), run, section, resumable=False)


def _copy_connectome(src: str, base: Path, out: Path) -> None:
    if src:
        shutil.copytree(resolve_file(base, src, "data.connectome"), out / "connectome")


def import_stage(cfg: PipelineConfig, base: Path) -> Stage:
    d = cfg.data
    if not d.paths:
        raise InputError(None, "data.paths", "the Sensorium folders or NWB files to import", "none")
    srcs = [resolve_file(base, p, "data.paths") for p in d.paths]
    conn = [resolve_file(base, d.connectome, "data.connectome")] if d.connectome else []
    section = {"format": d.format, "paths": [str(p) for p in srcs], "connectome": d.connectome,
               "fingerprint": _fingerprint(srcs + conn)}

    def run(ctx: StageContext) -> dict[str, Any]:
        module = {"sensorium": "twin.data.sensorium", "nwb": "twin.data.nwb"}[d.format]
        fn = _need(module, f"import_{d.format}", "import_folder", "import_file", "convert")
        rec_dir = ctx.out_dir / "recordings"
        rec_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for src in srcs:
            dst = rec_dir / (src.stem + ".h5")
            fn(src, dst)
            written.append(dst.name)
        _copy_connectome(d.connectome, base, ctx.out_dir)
        return {"recordings": written}

    return Stage("import", (), run, section)


def recordings_stage(cfg: PipelineConfig, base: Path) -> Stage:
    d = cfg.data
    if not d.paths:
        raise InputError(None, "data.paths", "Recording .h5 files or folders of them", "none")
    srcs = [resolve_file(base, p, "data.paths") for p in d.paths]
    conn = [resolve_file(base, d.connectome, "data.connectome")] if d.connectome else []
    section = {"paths": [str(p) for p in srcs], "connectome": d.connectome, "fingerprint": _fingerprint(srcs + conn)}

    def run(ctx: StageContext) -> dict[str, Any]:
        from twin.data.recording import open_recording

        rec_dir = ctx.out_dir / "recordings"
        rec_dir.mkdir(parents=True, exist_ok=True)
        files = [f for s in srcs for f in ([s] if s.is_file() else sorted(s.glob("*.h5")))]
        for f in files:
            with open_recording(f):  # validates
                pass
            os.symlink(f.resolve(), rec_dir / f.name)
        _copy_connectome(d.connectome, base, ctx.out_dir)
        return {"recordings": [f.name for f in files]}

    return Stage("recordings", (), run, section)


# ------------------------------------------------------------------ model stages
def train_stage(cfg: PipelineConfig, base: Path, data: str) -> Stage:
    section = stage_toml(base, cfg.train, "train", cfg.seed, drop=("data.recordings",))

    def run(ctx: StageContext) -> dict[str, Any]:
        from twin.config import apply_overrides
        from twin.train.config import TrainConfig
        from twin.train.loop import train

        rec = str(ctx.inputs[data] / "recordings")
        tc = from_dict(TrainConfig, apply_overrides(section, [f"data.recordings=[{rec!r}]".replace("'", '"')]))
        train(tc, ctx.out_dir, progress=ctx.progress)
        return {}

    return Stage("train", (data,), run, section, resumable=True)


def evaluate_stage(cfg: PipelineConfig, data: str) -> Stage:
    section = {"batch_size": cfg.evaluate.batch_size}

    def run(ctx: StageContext) -> dict[str, Any]:
        from twin.evaluate import evaluate_run

        sim = ctx.inputs[data]
        truth = sim if (sim / "truth" / "params.json").is_file() else None
        recs = sorted((sim / "recordings").glob("*.h5"))
        s = evaluate_run(ctx.inputs["train"], ctx.out_dir, recordings=recs, truth=truth,
                         batch_size=cfg.evaluate.batch_size, progress=ctx.progress, model_scans_only=True)
        nm = s["stimulus_types"].get("natural_movie", {}).get("median", {})
        return {"median_correlation_to_average_natural_movie": nm.get("correlation_to_average")}

    return Stage("evaluate", (data, "train"), run, section)


def insilico_stage(cfg: PipelineConfig, base: Path, data: str) -> Stage:
    battery_dict = stage_toml(base, cfg.insilico, "insilico", cfg.seed)
    section = {"battery": battery_dict, "truth": cfg.insilico.truth and data == "simulate",
               "truth_response": cfg.insilico.truth_response}

    def run(ctx: StageContext) -> dict[str, Any]:
        from twin.model import load_model

        run_battery = _need(("twin.insilico", "twin.insilico.battery", "twin.insilico.run"), "run_battery")
        cls = _need(("twin.insilico", "twin.insilico.config"), "InsilicoConfig", "BatteryConfig")
        battery = from_dict(cls, battery_dict)
        run_battery(battery, load_model(ctx.inputs["train"]), ctx.out_dir, progress=ctx.progress)
        if section["truth"]:  # the same battery on the planted neurons: the in-silico ground truth
            from twin.insilico.battery import run_truth_batteries

            run_truth_batteries(battery, ctx.inputs[data], ctx.out_dir, cfg.insilico.truth_response,
                                progress=ctx.progress)
        return {}

    return Stage("insilico", (data, "train"), run, section, resumable=True)


# Keys of the analysis config that the pipeline fills in from upstream stages (not hashed).
ANALYZE_INPUTS = {"connectome": lambda i, d: i[d] / "connectome",
                  "profiles": lambda i, d: i["insilico"] / "profiles.h5",
                  "metrics": lambda i, d: i["evaluate"] / "metrics.h5"}


def analyze_stage(cfg: PipelineConfig, base: Path, data: str, deps: tuple[str, ...]) -> Stage:
    section = stage_toml(base, cfg.analyze, "analyze", cfg.seed, drop=tuple(ANALYZE_INPUTS))

    def run(ctx: StageContext) -> dict[str, Any]:
        analyze = _need(("twin.analysis", "twin.analysis.analyze", "twin.analysis.run"), "analyze")
        cls = _need(("twin.analysis", "twin.analysis.config"), "AnalysisConfig", "AnalyzeConfig")
        filled = dict(section)
        for key, where in ANALYZE_INPUTS.items():
            try:
                p = where(ctx.inputs, data)
            except KeyError:
                continue
            if p.exists():
                filled[key] = str(p)
        analyze(from_dict(cls, filled), ctx.out_dir)
        return {}

    return Stage("analyze", deps, run, section)


def report_stage(cfg: PipelineConfig, data: str, deps: tuple[str, ...]) -> Stage:
    section = {"title": cfg.report.title or f"twin report: {cfg.name}", "bootstrap": cfg.report.bootstrap}

    def run(ctx: StageContext) -> dict[str, Any]:
        from twin.report.build import build_report
        from twin.report.sources import Sources

        i = ctx.inputs
        src = Sources(data=i.get(data), train=i.get("train"), evaluate=i.get("evaluate"),
                      insilico=i.get("insilico"), analyze=i.get("analyze"), pipeline=ctx.out_dir.parent)
        paths = build_report(src, ctx.out_dir, title=section["title"], config=ctx.pipeline,
                             n_boot=section["bootstrap"])
        return {k: str(v) for k, v in paths.items()}

    return Stage("report", deps, run, section)


def build_stages(cfg: PipelineConfig, base: Path) -> list[Stage]:
    """The pipeline's stages, in order, with their resolved config sections."""
    data = cfg.data.source
    maker: Callable[..., Stage] = {"simulate": simulate_stage, "import": import_stage,
                                   "recordings": recordings_stage}[data]
    stages = [maker(cfg, base)]
    want = set(cfg.stages)
    if "train" in want:
        stages.append(train_stage(cfg, base, data))
    if "evaluate" in want and "train" in want:
        stages.append(evaluate_stage(cfg, data))
    if "insilico" in want and "train" in want:
        stages.append(insilico_stage(cfg, base, data))
    if "analyze" in want:
        have = {s.name for s in stages}
        stages.append(analyze_stage(cfg, base, data, tuple(d for d in (data, "evaluate", "insilico") if d in have)))
    if "report" in want:
        stages.append(report_stage(cfg, data, tuple(s.name for s in stages)))
    return stages
