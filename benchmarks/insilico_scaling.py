"""How the in-silico battery scales with the number of neurons (it should scale with stimuli).

Times, on the synthetic :class:`twin.insilico.testing.GaborPopulation` (or ``--truth SIM_DIR``
for the simulator's planted neurons, first ``n`` units), a tuning battery (16 directions of
gratings and directional noise, SF/TF sweeps) and MEIs (a fixed number of ascent steps for a
fixed-size batch of neurons), as the neuron count grows tenfold per step. The tuning battery's
model calls are the same for every neuron count (one call answers for all neurons); MEIs need one
input per neuron, so their time per *step* is flat while the number of batches grows.

    python benchmarks/insilico_scaling.py [--sizes 10 100 1000] [--steps 50] [--image 36 64]

Prints one line per size: neurons, tuning seconds (stimuli, model calls, gOSI/gDSI, permutation
tests, F1/F0), the extra seconds of the per-neuron von Mises fits, MEI seconds (for ``--mei-units`` neurons, so
the per-batch cost is comparable), and the backend. Not run by the tests.
"""

from __future__ import annotations

import argparse
import time


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--steps", type=int, default=50, help="MEI ascent steps")
    p.add_argument("--mei-units", type=int, default=32, help="neurons per MEI batch (one batch timed)")
    p.add_argument("--image", type=int, nargs=2, default=[36, 64])
    p.add_argument("--frames", type=int, default=30, help="frames per tuning clip")
    args = p.parse_args(argv)

    import jax

    from twin.insilico.common import unit_table
    from twin.insilico.config import MEIConfig, TuningConfig
    from twin.insilico.mei import run_mei
    from twin.insilico.testing import GaborPopulation
    from twin.insilico.tuning import run_tuning

    tcfg = TuningConfig(n_directions=16, n_frames=args.frames, n_permutations=100, von_mises=False)
    vcfg = TuningConfig(n_directions=16, n_frames=args.frames, n_permutations=100)
    mcfg = MEIConfig(n_steps=args.steps, unit_batch=args.mei_units, n_frames=8, n_random=2)
    print(f"backend {jax.default_backend()}  image {tuple(args.image)}  tuning clips "
          f"{16 * (tcfg.n_phases + tcfg.noise_repeats + len(tcfg.sf_list) + len(tcfg.tf_list))} x {args.frames} frames")
    print(f"{'neurons':>8} {'tuning_s':>9} {'+vonmises_s':>12} {'mei_s(' + str(args.mei_units) + ' units)':>18} "
          f"{'mei_s/neuron':>13}")
    for n in args.sizes:
        m = GaborPopulation(n=n, image_shape=tuple(args.image), pixel_size_deg=2.0, seed=0)
        units = unit_table(m, m.recording_ids())
        run_tuning(m, units.iloc[:2], TuningConfig(n_directions=2, n_frames=args.frames, sf_list=(0.04,),
                                                   tf_list=(2.0,), n_phases=1, noise_repeats=1,
                                                   n_permutations=1), 0)   # compile
        t_tune = _time(lambda: run_tuning(m, units, tcfg, 0))
        t_vm = _time(lambda: run_tuning(m, units, vcfg, 0)) - t_tune
        sub = units.iloc[:args.mei_units]
        run_mei(m, sub, MEIConfig(n_steps=1, unit_batch=args.mei_units, n_frames=8, n_random=2), 0)  # compile
        t_mei = _time(lambda: run_mei(m, sub, mcfg, 0))
        print(f"{n:>8} {t_tune:>9.2f} {t_vm:>12.2f} {t_mei:>18.2f} {t_mei / len(sub):>13.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
