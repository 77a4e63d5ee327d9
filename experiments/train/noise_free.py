"""Write a simulation's Recordings with noise-free responses, to measure a config's ceiling.

    .venv/bin/python experiments/train/noise_free.py demo_out/simulate /tmp/nf 29187-4-1 29187-4-2
    .venv/bin/twin train experiments/train/demo.toml --out /tmp/nf_run --set 'data.recordings=["/tmp/nf"]'
    .venv/bin/twin evaluate /tmp/nf_run --out /tmp/nf_eval --truth demo_out/simulate

The twin then learns from the planted neurons' expected responses instead of noisy events and is
scored on the usual noisy test trials, so its ratio to the truth is what the architecture and
the training budget allow with unlimited signal-to-noise: the ceiling above the noisy-data
score. Scans default to all of the simulation's.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    from twin.simulate.truth import write_noise_free_recordings

    for path in write_noise_free_recordings(argv[0], argv[1], argv[2:] or None):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
