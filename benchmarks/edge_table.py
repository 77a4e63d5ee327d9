"""Edge-table build time and memory on a synapse table of ~10^8 rows (MICrONS has 3.4 x 10^8).

Generates (once per settings, reused from ``--dir``) a synthetic connectome with a seed:
``--neurons`` co-registered neurons (~``--proofread`` of them with a proofread axon) among
``--other-ids`` x as many non-co-registered root ids, a ``synapses_pni_2.parquet`` of ``--rows``
rows written streaming in row groups (columns id, pre/post root ids, size, ctr_pt_position_x/y/z;
each end of a synapse is a co-registered neuron with probability ``--coreg-fraction``), a
proximity table (Ld > 0 for ``--adp-fraction`` of the pairs), a functional profile and a
metrics.h5. Then, each in a fresh process so that peak RSS is its own:

1. ``synapse_counts`` alone (the streamed scan), 2. the whole ``build_edge_table`` (the table in
memory), 3. ``write_edge_table`` (built in blocks of presynaptic neurons, streamed to parquet).

Prints per stage: seconds, synapse rows/s, peak RSS, and peak RSS / the synapse table's
in-memory size (rows x 40 bytes), plus the build's stage timings.

    python benchmarks/edge_table.py [--rows 1e8] [--neurons 1e4] [--dir /tmp/twin_edge_bench]

Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

BYTES_PER_ROW = 8 * 3 + 4 * 4   # id, pre, post int64; size, ctr_pt_position_x/y/z int32
ROOT0 = 864691135000000000      # MICrONS-like 18-digit root ids


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def generate(folder: Path, rows: int, neurons: int, other: int, coreg_fraction: float, proofread: float,
             adp_fraction: float, row_group: int, seed: int) -> dict:
    """Write the synthetic connectome, profile and metrics under ``folder`` (skip if present)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import xarray as xr

    from twin.similarity import save_profiles

    settings = dict(rows=rows, neurons=neurons, other=other, coreg_fraction=coreg_fraction, proofread=proofread,
                    adp_fraction=adp_fraction, row_group=row_group, seed=seed)
    marker = folder / "settings.json"
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return {"generated": False, "seconds": 0.0}
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = ROOT0 + rng.choice(50 * (neurons + other * neurons), neurons + other * neurons, replace=False)
    roots, others = np.sort(ids[:neurons]), ids[neurons:]
    n = neurons
    units = np.arange(n) + 1
    pos = pd.Series(list(rng.integers(0, 10**5, (n, 3))), dtype=object)
    pd.DataFrame({"id": np.arange(n) + 10**6, "pt_root_id": roots, "pt_position": pos}).to_parquet(
        folder / "nucleus_detection_v0.parquet")
    pd.DataFrame({"id": np.arange(n), "pt_root_id": roots, "pt_position": pos, "session": 4, "scan_idx": 7,
                  "unit_id": units, "field": 1, "residual": rng.uniform(0, 5, n), "score": rng.uniform(0, 1, n)}
                 ).to_parquet(folder / "coregistration_manual_v4.parquet")
    area = rng.choice(["V1", "LM", "RL", "AL"], n, p=[0.55, 0.15, 0.15, 0.15])
    ctype = rng.choice(["23P", "4P", "5P-IT", "6P-IT", "BC"], n)
    pd.DataFrame({"pt_root_id": roots, "classification_system": np.where(ctype == "BC", "inhibitory_neuron",
                                                                          "excitatory_neuron"),
                  "cell_type": ctype}).to_parquet(folder / "aibs_metamodel_celltypes_v661.parquet")
    pd.DataFrame({"target_id": np.arange(n) + 10**6, "pt_root_id": roots, "tag": area,
                  "value": rng.uniform(0, 500, n)}).to_parquet(folder / "nucleus_functional_area_assignment.parquet")
    is_pre = rng.random(n) < proofread
    pd.DataFrame({"pt_root_id": roots, "valid_id": roots, "status_dendrite": "extended",
                  "status_axon": np.where(is_pre, "extended", "non"), "strategy_dendrite": "dendrite_extended",
                  "strategy_axon": np.where(is_pre, "axon_fully_extended", "none")}).to_parquet(
        folder / "proofreading_status_and_strategy.parquet")

    pre, post = roots[is_pre], roots
    k = int(adp_fraction * len(pre) * len(post))
    flat = rng.choice(len(pre) * len(post), k, replace=False)
    pd.DataFrame({"pre_pt_root_id": pre[flat // len(post)], "post_pt_root_id": post[flat % len(post)],
                  "ld_um": rng.gamma(2.0, 20.0, k)}).query("pre_pt_root_id != post_pt_root_id").to_parquet(
        folder / "proximity.parquet")

    schema = pa.schema([("id", pa.int64()), ("pre_pt_root_id", pa.int64()), ("post_pt_root_id", pa.int64()),
                        ("size", pa.int32()), ("ctr_pt_position_x", pa.int32()), ("ctr_pt_position_y", pa.int32()),
                        ("ctr_pt_position_z", pa.int32())])
    tmp = folder / ".synapses_pni_2.parquet.tmp"
    with pq.ParquetWriter(tmp, schema) as w:
        for s in range(0, rows, row_group):
            m = min(row_group, rows - s)

            def ends(pool):
                return np.where(rng.random(m) < coreg_fraction, rng.choice(roots, m), rng.choice(pool, m))
            cols = [np.arange(s, s + m, dtype=np.int64), ends(others), ends(others),
                    rng.integers(50, 20000, m, dtype=np.int32)] + [rng.integers(0, 10**5, m, dtype=np.int32)
                                                                   for _ in range(3)]
            w.write_table(pa.Table.from_arrays(cols, schema=schema), row_group_size=row_group)
    tmp.replace(folder / "synapses_pni_2.parquet")

    prof = xr.Dataset({"signal_response": (("unit", "sample"), rng.normal(size=(n, 100)).astype(np.float32)),
                       "rf_center": (("unit", "axis"), rng.normal(size=(n, 2))),
                       "pref_ori": ("unit", rng.uniform(0, 180, n)),
                       "phase_invariance": ("unit", rng.uniform(0, 1, n))},
                      coords={"pt_root_id": ("unit", roots), "unit_id": ("unit", units),
                              "session": ("unit", np.full(n, 4)), "scan_idx": ("unit", np.full(n, 7)),
                              "recording_id": ("unit", np.array(["17797-4-7"] * n, object))})
    save_profiles(prof, folder / "profiles.h5")
    cc = rng.uniform(0, 1, (n, 1))
    met = xr.Dataset({"cc_abs": (("unit", "stimulus_type"), cc * 0.8), "cc_max": (("unit", "stimulus_type"), cc),
                      "passes_quality": (("unit", "stimulus_type"), ((cc > 0.4) & (cc * 0.8 > 0.2)).astype(np.int8))},
                     coords={"unit_id": ("unit", units), "recording_id": ("unit", np.array(["17797-4-7"] * n, object)),
                             "stimulus_type": ["natural_movie"]})
    met.to_netcdf(folder / "metrics.h5", engine="h5netcdf")
    marker.write_text(json.dumps(settings))
    return {"generated": True, "seconds": round(time.perf_counter() - t0, 1)}


def stage(folder: Path, what: str, batch_rows: int) -> dict:
    """Run one stage in this (fresh) process; returns seconds, peak RSS and details."""
    import numpy as np

    base = _rss_mb()
    from twin.connectome import build_edge_table, coregistered_neurons, load_tables, synapse_counts
    import twin.similarity  # noqa: F401  (import cost outside the timed region)
    imported = _rss_mb()
    t0 = time.perf_counter()
    if what == "scan":
        tables = load_tables(folder)
        n = coregistered_neurons(tables)
        pre = n.pt_root_id[n.proofread_axon].to_numpy(np.int64)
        out = synapse_counts(tables.synapses, pre, n.pt_root_id.to_numpy(np.int64), batch_rows=batch_rows)
        info = {"pairs": len(out), "synapses": int(out.n_synapses.sum())}
    elif what == "write":
        from twin.connectome import write_edge_table
        path = write_edge_table(folder, folder / "edges.parquet", folder / "profiles.h5", folder / "metrics.h5",
                                batch_rows=batch_rows)
        import pyarrow.parquet as pq
        meta = pq.read_metadata(path)
        info = {"edges": meta.num_rows, "row_groups": meta.num_row_groups,
                "parquet_mb": round(path.stat().st_size / 2**20, 1),
                "timings_s": json.loads(meta.metadata[b"twin.attrs"])["timings_s"]}
    else:
        df = build_edge_table(folder, folder / "profiles.h5", folder / "metrics.h5", batch_rows=batch_rows)
        info = {"edges": len(df), "edge_table_mb": round(df.memory_usage(deep=True).sum() / 2**20, 1),
                "connected": int((df.n_synapses > 0).sum()), "timings_s": df.attrs["timings_s"]}
    sec = time.perf_counter() - t0
    return {"stage": what, "seconds": round(sec, 2), "peak_rss_mb": round(_rss_mb(), 1),
            "rss_after_imports_mb": round(imported, 1), "rss_at_start_mb": round(base, 1), **info}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=float, default=1e8)
    p.add_argument("--neurons", type=float, default=1e4)
    p.add_argument("--other-ids", type=int, default=20, help="non-co-registered root ids per co-registered one")
    p.add_argument("--coreg-fraction", type=float, default=0.3)
    p.add_argument("--proofread", type=float, default=0.1)
    p.add_argument("--adp-fraction", type=float, default=0.05)
    p.add_argument("--row-group", type=int, default=1 << 20)
    p.add_argument("--batch-rows", type=int, default=1 << 20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=None, help="data folder (default /tmp/twin_edge_bench_<rows>_<neurons>)")
    p.add_argument("--stage", choices=["generate", "scan", "build", "write"], help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    rows, neurons = int(a.rows), int(a.neurons)
    folder = Path(a.dir or f"/tmp/twin_edge_bench_{rows:.0e}_{neurons:.0e}".replace("+", ""))
    if a.stage == "generate":
        print(json.dumps(generate(folder, rows, neurons, a.other_ids, a.coreg_fraction, a.proofread,
                                  a.adp_fraction, a.row_group, a.seed)))
        return 0
    if a.stage:
        print(json.dumps(stage(folder, a.stage, a.batch_rows)))
        return 0

    def run(what: str) -> dict:
        # each stage in a fresh process: ru_maxrss carries over from the parent at fork, so the
        # parent stays small (no numpy) and every stage's peak RSS is its own
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--dir", str(folder),
               "--stage", what]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    gen = run("generate")
    size_gb = (folder / "synapses_pni_2.parquet").stat().st_size / 1e9
    table_mb = rows * BYTES_PER_ROW / 2**20
    print(f"data: {folder} (generated: {gen['generated']}, {gen['seconds']} s); synapse parquet {size_gb:.2f} GB, "
          f"{rows:.1e} rows = {table_mb:.0f} MiB in memory at {BYTES_PER_ROW} B/row")
    results = []
    for what in ("scan", "build", "write"):
        r = run(what)
        r["rows_per_s"] = round(rows / r["seconds"])
        r["peak_over_table"] = round(r["peak_rss_mb"] / table_mb, 3)
        r["peak_above_imports_over_table"] = round((r["peak_rss_mb"] - r["rss_after_imports_mb"]) / table_mb, 3)
        results.append(r)
        extra = {k: v for k, v in r.items() if k not in ("stage", "seconds", "rows_per_s", "peak_rss_mb",
                                                           "peak_over_table")}
        print(f"{what:5s}: {r['seconds']:8.1f} s  {r['rows_per_s']:.3g} rows/s  peak RSS {r['peak_rss_mb']:.0f} MiB "
              f"({r['peak_over_table']:.3f} x table)  {extra}")
    if a.json:
        print(json.dumps({"rows": rows, "neurons": neurons, "generate": gen, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
