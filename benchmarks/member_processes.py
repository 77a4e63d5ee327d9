"""Ensemble members one after the other vs side by side in pinned processes (train.member_processes).

Trains the same two-member ensemble twice from scratch, each in a fresh ``twin train`` process:
``member_processes = 1`` (members in turn, each on every core) and ``= 2`` (one process per
member, each pinned to its share of the cores). Prints the wall time of each (start-up, steps,
and the refit when ``--refit``), the members' median step time, and the ratio. Both runs write
the same members (the test suite checks their parameters agree), so only time differs.

    .venv/bin/python benchmarks/member_processes.py [--steps 60] [--refit] [--config experiments/train/demo.toml]

The config's data must exist (``make demo``'s simulation for demo.toml).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(config: str, out: Path, steps: int, processes: int, refit: bool) -> dict:
    cmd = [str(Path(sys.executable).parent / "twin"), "train",   # the CLI users run (tcmalloc when installed)
           config, "--out", str(out), "--quiet",
           "--set", "seeds=[0, 1]", "--set", f"train.steps={steps}", "--set", f"train.member_processes={processes}",
           "--set", f"train.eval_every={steps}", "--set", f"train.checkpoint_every={steps}",
           "--set", f"refit.enabled={'true' if refit else 'false'}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    step_s = []
    for m in sorted(out.glob("seed_*")):
        rows = [json.loads(x) for x in (m / "metrics.jsonl").read_text().splitlines()]
        step_s.append(statistics.median(r["step_s"] for r in rows[2:]))
    return {"processes": processes, "wall_s": round(wall, 1), "member_step_s": [round(s, 3) for s in step_s]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/train/demo.toml")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--refit", action="store_true", help="include each member's readout refit")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="twin-members-") as tmp:
        rows = [run(a.config, Path(tmp) / f"p{p}", a.steps, p, a.refit) for p in (1, 2)]
    ratio = rows[0]["wall_s"] / rows[1]["wall_s"]
    if a.json:
        print(json.dumps({"runs": rows, "speedup": round(ratio, 3)}))
        return
    for r in rows:
        print(f"member_processes={r['processes']}: {r['wall_s']:.1f} s wall, median step per member "
              f"{', '.join(f'{s:.3f}' for s in r['member_step_s'])} s")
    print(f"two members side by side / in turn: {ratio:.2f}x faster ({a.steps} steps each"
          f"{', refit included' if a.refit else ', no refit'})")


if __name__ == "__main__":
    main()
