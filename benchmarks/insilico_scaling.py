"""How the in-silico battery scales with the number of neurons (it should scale with stimuli).

For each neuron count (tenfold steps) times, on ``n`` neurons:

* ``tuning_s``: the tuning battery of ``experiments/insilico/demo.toml`` (16 directions of
  gratings and directional noise, SF/TF sweeps, permutation tests, von Mises fits, F1/F0). Its
  model calls are the same whatever ``n`` (one pass per clip answers for every neuron), so this
  should stay nearly flat;
* ``mei_s``: MEIs for all ``n`` neurons (``--steps`` ascent steps, waves of ``unit_batch``
  neurons, one compilation): one input per neuron, so this grows with ``n`` but the time per
  neuron (``mei_ms/neuron``) should fall, then stay flat. For a twin, ``mei_all_s`` times the
  same MEIs with every neuron's readout run for each image and the wanted one gathered
  (``twin.insilico.engine.UNIT_READOUT = "all"``, the path before 2026-12-06), and ``all/wanted``
  is the ratio of the two.

Models (``--model``): ``twin`` (default: a randomly initialised twin with the demo training
architecture, ``experiments/train/demo.toml``, its ``n`` neurons split over ``--scans`` scans: a
shared core, so a pass costs the same for 10 or 1000 neurons), ``gabor``
(:class:`twin.insilico.testing.GaborPopulation` through the generic ``model.predict`` path:
every pass computes every neuron, so its per-neuron MEI time grows with ``n``), or ``truth``
with ``--sim SIM_DIR`` (the simulator's planted neurons: the first ``n`` neurons of the
simulation, one group per neuron for MEIs). Compilation is excluded (one warm-up run per size);
the backend is printed.

    python benchmarks/insilico_scaling.py [--model twin|gabor|truth] [--sim SIM_DIR]
        [--sizes 10 100 1000] [--steps 4] [--unit-batch 8] [--scans 2]

Not run by the tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=("twin", "gabor", "truth"), default="twin")
    p.add_argument("--sim", help="simulation folder for --model truth")
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--steps", type=int, default=4, help="MEI ascent steps")
    p.add_argument("--unit-batch", type=int, default=0,
                   help="MEI waves of this many neurons (0: experiments/insilico/demo.toml's mei.unit_batch)")
    p.add_argument("--scans", type=int, default=2,
                   help="--model twin: the n neurons split over this many scans (readouts)")
    args = p.parse_args(argv)

    import jax

    from twin.insilico.common import unit_table
    from twin.insilico.config import load_insilico_config
    from twin.insilico.mei import compute_meis
    from twin.insilico.testing import GaborPopulation, random_twin
    from twin.insilico.tuning import run_tuning

    demo = load_insilico_config(ROOT / "experiments" / "insilico" / "demo.toml")
    tcfg = demo.tuning
    mcfg = dataclasses.replace(demo.mei, n_steps=args.steps, max_units=0,
                               unit_batch=args.unit_batch or demo.mei.unit_batch)
    truth = None
    if args.model == "truth":
        if not args.sim:
            p.error("--model truth needs --sim SIM_DIR")
        from twin.simulate import load_truth_model

        truth = load_truth_model(args.sim)
    n_clips = tcfg.n_directions * (tcfg.n_phases + tcfg.noise_repeats + len(tcfg.sf_list) + len(tcfg.tf_list))
    print(f"backend {jax.default_backend()}  model {args.model}  tuning: up to {n_clips} clips x {tcfg.n_frames} "
          f"frames (duplicates shown once)  MEI: {args.steps} steps, waves of {mcfg.unit_batch}")
    from twin.insilico import engine

    both = args.model == "twin"
    print(f"{'neurons':>8} {'tuning_s':>9} {'mei_s':>8} {'mei_ms/neuron':>14}"
          + (f" {'mei_all_s':>10} {'all/wanted':>11}" if both else ""))
    for n in args.sizes:
        if args.model == "twin":
            k = max(1, min(args.scans, n))
            m = random_twin(tuple(n // k + (i < n % k) for i in range(k)))
            units = unit_table(m, m.recording_ids())
        elif args.model == "gabor":
            m = GaborPopulation(n=n, image_shape=(36, 64), pixel_size_deg=2.0, seed=0)
            units = unit_table(m, m.recording_ids())
        else:
            m = truth
            units = unit_table(m, m.recording_ids()).iloc[:n].reset_index(drop=True)
            if len(units) < n:
                print(f"{n:>8} (the simulation has only {len(units)} neurons)")
                continue
        small = dataclasses.replace(tcfg, n_permutations=1)
        run_tuning(m, units, small, 0)                                     # compile
        t_tune = _time(lambda: run_tuning(m, units, tcfg, 0))
        compute_meis(m, units, dataclasses.replace(mcfg, n_steps=2), 0)       # compile (same waves)
        t_mei = _time(lambda: compute_meis(m, units, mcfg, 0))
        extra = ""
        if both:
            engine.UNIT_READOUT = "all"
            try:
                compute_meis(m, units, dataclasses.replace(mcfg, n_steps=2), 0)
                t_all = _time(lambda: compute_meis(m, units, mcfg, 0))
            finally:
                engine.UNIT_READOUT = "wanted"
            extra = f" {t_all:>10.2f} {t_all / t_mei:>11.2f}"
        print(f"{len(units):>8} {t_tune:>9.2f} {t_mei:>8.2f} {1000 * t_mei / len(units):>14.1f}{extra}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
