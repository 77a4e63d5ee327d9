"""Calibration of the synaptic-scale test (twin.analysis.fe_poisson): coverage, null rate, power.

Simulates the pairs with Ld > 0 of each projection directly (twin.analysis.synthetic.draw_projection:
lognormal Ld, ~34 ADP pairs per connected pair, per-presynaptic-neuron random intercepts, the
similarity's pairwise distribution, Poisson counts with a planted slope) at the published sample
sizes (SCIENCE.md: 36 / 99 / 29 / 90 presynaptic neurons; 2,411 / 2,543 / 515 / 1,139 connected
pairs) and fits each projection as twin analyze does. Reports, per scenario and projection:

  coverage   share of 95% CIs containing the planted (published signal-correlation) slope
  null rate  share of p < 0.05 when the planted slope is 0, with a Clopper-Pearson 95% interval
  power      share of p < 0.05 at the published slopes (signal correlation, feature similarity)
  mde80      slope detectable with 80% power, (t_.975 + t_.80) * mean SE (signal correlation)

for the clustered standard errors (what twin analyze uses), the model-based ones, and a naive
pooled Poisson GLM without per-neuron intercepts (to show why the neuron must be modelled).
Scenarios: "poisson_ri" (random intercepts, sd 0.5: the published GLMM's model) and "robust"
(random intercepts correlated with the neuron's mean similarity, random slopes sd 0.5,
gamma-Poisson counts with variance 1: what the GLMM does not model).

    python experiments/analyze/calibration.py [--quick] [--seeds 200] [--nulls 200] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from twin.analysis.config import PROJECTIONS
from twin.analysis.fe_poisson import fit_poisson_fe
from twin.analysis.synthetic import PUBLISHED_N_CONNECTED, PUBLISHED_N_PRE, PUBLISHED_SLOPES
from twin.analysis.synthetic import draw_projection
from twin.io import write_text_atomic

SCENARIOS = {"poisson_ri": {"sd_pre": 0.5},
             "robust": {"sd_pre": 0.5, "confound": 0.5, "sd_slope": 0.5, "overdispersion": 1.0}}
SE_KINDS = ("cluster", "model", "naive")


def one_fit(seed: int, scenario: str, proj: str, beta: float, measure: str, scale: float) -> dict[str, tuple]:
    """Simulate one projection and fit it; returns {se kind: (estimate, ci_low, ci_high, p, se, df)}."""
    rng = np.random.default_rng([seed, list(SCENARIOS).index(scenario), PROJECTIONS.index(proj),
                                 ["signal_correlation", "feature_cosine"].index(measure), int(beta != 0)])
    P = max(int(round(PUBLISHED_N_PRE[proj] * scale)), 6)
    C = max(int(round(PUBLISHED_N_CONNECTED[proj] * scale)), 40)
    d = draw_projection(rng, P, C, beta, measure=measure, **SCENARIOS[scenario])
    off = np.log(d["ld"])
    fit = fit_poisson_fe(d["y"], d["x"], off, d["g"])
    keys = ("estimate", "ci_low", "ci_high", "p", "se")
    out = {k: (*(fit.inference(0, k)[f] for f in keys), fit.df(k)) for k in ("cluster", "model")}
    pooled = fit_poisson_fe(d["y"], d["x"], off, np.zeros(len(d["y"])))  # one intercept for all neurons
    out["naive"] = (*(pooled.inference(0, "model")[f] for f in keys), np.inf)
    return out


def run(scenario: str, n_seeds: int, n_nulls: int, n_power: int, scale: float) -> dict:
    res: dict = {"projections": {}}
    for proj in PROJECTIONS:
        beta = PUBLISHED_SLOPES["signal_correlation"][proj]
        planted = [one_fit(s, scenario, proj, beta, "signal_correlation", scale) for s in range(n_seeds)]
        nulls = [one_fit(s, scenario, proj, 0.0, "signal_correlation", scale) for s in range(n_nulls)]
        beta_f = PUBLISHED_SLOPES["feature_cosine"][proj]
        feat = [one_fit(s, scenario, proj, beta_f, "feature_cosine", scale) for s in range(n_power)]
        row = {"beta_signal_correlation": beta, "beta_feature_cosine": beta_f}
        for k in SE_KINDS:
            est = np.array([f[k][0] for f in planted])
            row[k] = {
                "coverage": float(np.mean([f[k][1] <= beta <= f[k][2] for f in planted])),
                "null_rate": float(np.mean([f[k][3] < 0.05 for f in nulls])),
                "null_rate_ci95": _binomial_ci(sum(f[k][3] < 0.05 for f in nulls), len(nulls)),
                "power_signal_correlation": float(np.mean([f[k][3] < 0.05 for f in planted])),
                "power_feature_cosine": float(np.mean([f[k][3] < 0.05 for f in feat])),
                "mean_estimate": float(est.mean()), "bias": float(est.mean() - beta),
                "mean_ci_width": float(np.mean([f[k][2] - f[k][1] for f in planted])),
                "mean_se": float(np.mean([f[k][4] for f in planted])),
                # slope detectable with 80% power at alpha 0.05: (t_.975 + t_.80) * SE
                "slope_for_80pct_power": float(sum(stats.t.ppf(q, planted[0][k][5]) for q in (0.975, 0.8))
                                               * np.mean([f[k][4] for f in planted]))}
        res["projections"][proj] = row
    for k in SE_KINDS:  # pooled over projections
        res[f"overall_{k}"] = {m: float(np.mean([res["projections"][p][k][m] for p in PROJECTIONS]))
                               for m in ("coverage", "null_rate")}
        hits = int(round(res[f"overall_{k}"]["null_rate"] * n_nulls * len(PROJECTIONS)))
        res[f"overall_{k}"]["null_rate_ci95"] = _binomial_ci(hits, n_nulls * len(PROJECTIONS))
    return res


def _binomial_ci(k: int, n: int) -> list[float]:
    """Clopper-Pearson 95% interval of a rate of k in n."""
    ci = stats.binomtest(int(k), int(n)).proportion_ci(0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def table(results: dict) -> str:
    lines = []
    for scen, res in results["scenarios"].items():
        lines.append(f"\nscenario {scen}: {SCENARIOS[scen]}")
        head = (f"{'projection':10s} {'se':8s} {'beta':>5s} {'mean est':>9s} {'coverage':>9s} {'null rate':>9s} "
                f"{'(95% CI)':>13s} "
                f"{'power sc':>9s} {'power fc':>9s} {'mde80':>6s}")
        lines += [head, "-" * len(head)]
        for proj, row in res["projections"].items():
            for k in SE_KINDS:
                r = row[k]
                lines.append(f"{proj:10s} {k:8s} {row['beta_signal_correlation']:5.2f} {r['mean_estimate']:9.3f} "
                             f"{r['coverage']:9.3f} {r['null_rate']:9.3f} {_ci(r['null_rate_ci95'])} "
                             f"{r['power_signal_correlation']:9.3f} "
                             f"{r['power_feature_cosine']:9.3f} {r['slope_for_80pct_power']:6.2f}")
        for k in SE_KINDS:
            o = res[f"overall_{k}"]
            lines.append(f"{'all':10s} {k:8s} {'':5s} {'':9s} {o['coverage']:9.3f} {o['null_rate']:9.3f} "
                         f"{_ci(o['null_rate_ci95'])}")
    return "\n".join(lines)


def _ci(ci: list[float]) -> str:
    return f"({ci[0]:.3f}-{ci[1]:.3f})"



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=200, help="simulations with the published slopes (coverage)")
    ap.add_argument("--nulls", type=int, default=200, help="simulations with slope 0 (null rate), per projection")
    ap.add_argument("--power", type=int, default=100, help="simulations for the feature-similarity power")
    ap.add_argument("--scale", type=float, default=1.0, help="sample size relative to the published one")
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--quick", action="store_true", help="a smoke run: 10 seeds, 20 nulls, 10 power, scale 0.25")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.nulls, args.power, args.scale = 10, 20, 10, 0.25
    t0 = time.time()
    results = {"settings": {"seeds": args.seeds, "nulls": args.nulls, "power": args.power, "scale": args.scale,
                            "n_pre": PUBLISHED_N_PRE, "n_connected": PUBLISHED_N_CONNECTED,
                            "adp_per_connected": 34, "slopes": PUBLISHED_SLOPES},
               "scenarios": {s: run(s, args.seeds, args.nulls, args.power, args.scale) for s in args.scenarios}}
    results["seconds"] = time.time() - t0
    print(table(results))
    print(f"\n{time.time() - t0:.0f} s")
    if args.out:
        write_text_atomic(args.out, json.dumps(results, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
