"""The synaptic-scale estimator: per-neuron-intercept Poisson, clustered errors, permutation p."""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm

from twin.analysis.fe_poisson import fit_poisson_fe, permutation_pvalue
from twin.analysis.synthetic import draw_projection


def _projection(seed, beta, P=15, C=200, **kw):
    return draw_projection(np.random.default_rng(seed), P, C, beta, **kw)


def test_fe_poisson_equals_statsmodels_glm_with_one_dummy_per_neuron():
    d = _projection(1, 2.0, P=8, C=120, adp_per_connected=10)
    fit = fit_poisson_fe(d["y"], d["x"], np.log(d["ld"]), d["g"])
    dummies = pd.get_dummies(d["g"]).to_numpy(float)
    ref = sm.GLM(d["y"], np.c_[d["x"], dummies], family=sm.families.Poisson(), offset=np.log(d["ld"])).fit()
    assert fit.converged
    np.testing.assert_allclose(fit.beta[0], ref.params[0], rtol=1e-6)
    np.testing.assert_allclose(fit.se("model")[0], ref.bse[0], rtol=1e-4)


def test_neurons_without_synapses_drop_out_and_do_not_change_the_slope():
    d = _projection(2, 1.5)
    fit = fit_poisson_fe(d["y"], d["x"], np.log(d["ld"]), d["g"])
    extra = 1000 + np.repeat(np.arange(3), 50)  # three neurons, partners but no synapse
    fit2 = fit_poisson_fe(np.r_[d["y"], np.zeros(150)], np.r_[d["x"], np.random.default_rng(0).normal(size=150)],
                          np.r_[np.log(d["ld"]), np.zeros(150)], np.r_[d["g"], extra])
    assert fit2.n_groups == fit.n_groups
    np.testing.assert_allclose(fit2.beta, fit.beta)


def test_slope_recovers_a_planted_beta_within_its_95_ci():
    d = _projection(3, 2.3, P=30, C=1500, sd_pre=0.7)
    r = fit_poisson_fe(d["y"], d["x"], np.log(d["ld"]), d["g"]).inference()
    assert r["ci_low"] < 2.3 < r["ci_high"]
    assert abs(r["estimate"] - 2.3) < 0.5 and r["p"] < 1e-6


def test_null_p_values_are_roughly_uniform_in_a_mini_calibration():
    # 40 nulls with neuron random effects, random slopes and extra-Poisson variation
    p = np.array([fit_poisson_fe(*(lambda d: (d["y"], d["x"], np.log(d["ld"]), d["g"]))(
        _projection(100 + s, 0.0, P=12, C=150, sd_slope=0.3, overdispersion=0.5))).inference()["p"]
        for s in range(40)])
    assert np.mean(p < 0.05) <= 0.15          # Binomial(40, 0.05) >= 7 has probability < 0.01
    assert 0.3 < p.mean() < 0.7 and np.mean(p < 0.5) < 0.75


def test_ignoring_the_neuron_inflates_false_positives_when_neurons_differ():
    # intercepts that track a neuron's mean similarity: the pooled GLM finds an effect, ours does not
    ps_fe, ps_pooled = [], []
    for s in range(10):
        d = _projection(200 + s, 0.0, P=20, C=400, confound=1.5)
        ps_fe.append(fit_poisson_fe(d["y"], d["x"], np.log(d["ld"]), d["g"]).inference()["p"])
        ps_pooled.append(fit_poisson_fe(d["y"], d["x"], np.log(d["ld"]), np.zeros(len(d["g"]))).inference(
            0, "model")["p"])
    assert np.mean(np.array(ps_pooled) < 0.05) >= 0.5
    assert np.mean(np.array(ps_fe) < 0.05) <= 0.2


def test_permutation_p_is_small_for_a_planted_effect_and_not_for_a_null():
    rng = np.random.default_rng(0)
    d = _projection(4, 2.5, P=15, C=400)
    _, p_eff = permutation_pvalue(d["y"], d["x"], np.log(d["ld"]), d["g"], 199, rng)
    d0 = _projection(5, 0.0, P=15, C=400)
    _, p_null = permutation_pvalue(d0["y"], d0["x"], np.log(d0["ld"]), d0["g"], 199, rng)
    assert p_eff <= 0.01 and p_null > 0.05


def test_permutation_shuffles_only_within_neurons():
    # a covariate constant within each neuron has a single permutation value: p = 1
    g = np.repeat(np.arange(5), 20)
    x = g.astype(float)
    y = np.random.default_rng(1).poisson(1.0, 100)
    _, p = permutation_pvalue(y, x, np.zeros(100), g, 50, np.random.default_rng(0))
    assert p == 1.0


def test_cluster_errors_are_the_cr3_jackknife_over_clusters_of_groups():
    d = _projection(7, 1.0, P=12, C=300)
    y, x, off, g = d["y"], d["x"], np.log(d["ld"]), d["g"]
    base = fit_poisson_fe(y, x, off, g)
    same = fit_poisson_fe(y, x, off, g, clusters=g * 10 + 3)          # one cluster per group: no change
    np.testing.assert_allclose(same.cov_cluster, base.cov_cluster)
    pairs = g // 2                                                    # two groups per cluster
    coarse = fit_poisson_fe(y, x, off, g, clusters=pairs)
    np.testing.assert_allclose(coarse.beta, base.beta)
    # by hand: per-group scores and information at the estimate, summed per cluster;
    # CR3 = (G-1)/G sum_c (s_c / (H - H_c))^2
    p = np.exp(off + x * base.beta[0])
    tot_y, tot_p = np.bincount(g, weights=y), np.bincount(g, weights=p)
    q = p / tot_p[g]
    s_g = np.bincount(g, weights=x * (y - tot_y[g] * q))
    h_g = tot_y * (np.bincount(g, weights=q * x * x) - np.bincount(g, weights=q * x) ** 2)
    used = tot_y > 0
    c_of_g = np.unique(g) // 2
    s_c = np.bincount(c_of_g[used], weights=s_g[used])
    h_c = np.bincount(c_of_g[used], weights=h_g[used])
    has = np.isin(np.arange(len(s_c)), c_of_g[used])
    s_c, h_c = s_c[has], h_c[has]
    G, H = len(s_c), h_c.sum()
    np.testing.assert_allclose(H, 1 / base.cov_model[0, 0], rtol=1e-8)
    want = (G - 1) / G * np.sum((s_c / (H - h_c)) ** 2)
    assert coarse.n_groups == G
    np.testing.assert_allclose(coarse.cov_cluster[0, 0], want, rtol=1e-6)


def test_cluster_errors_match_refitting_without_each_neuron():
    d = _projection(11, 0.5, P=15, C=400)
    y, x, off, g = d["y"], d["x"], np.log(d["ld"]), d["g"]
    fit = fit_poisson_fe(y, x, off, g)
    used = [k for k in np.unique(g) if y[g == k].sum() > 0]
    loo = np.array([fit_poisson_fe(y[g != k], x[g != k], off[g != k], g[g != k]).beta[0] for k in used])
    G = len(used)
    jack = (G - 1) / G * np.sum((loo - fit.beta[0]) ** 2)            # the exact leave-one-out jackknife
    np.testing.assert_allclose(fit.cov_cluster[0, 0], jack, rtol=0.05)


def test_a_group_split_across_clusters_is_an_error():
    import pytest

    d = _projection(8, 1.0, P=4, C=60)
    bad = np.arange(len(d["y"])) % 2
    with pytest.raises(ValueError, match="within one cluster"):
        fit_poisson_fe(d["y"], d["x"], np.log(d["ld"]), d["g"], clusters=bad)


def test_cluster_df_is_g_minus_1_for_equal_neurons_and_shrinks_when_one_dominates():
    rng = np.random.default_rng(3)
    n, G = 80, 12
    x1, off1 = rng.normal(size=n), np.log(rng.uniform(1, 20, n))
    y1 = rng.poisson(np.exp(off1 - 2.0 + 0.3 * x1)).astype(float)
    x, off, y = np.tile(x1, G), np.tile(off1, G), np.tile(y1, G)
    g = np.repeat(np.arange(G), n)
    y = y + (rng.random(len(y)) < 0.02)         # not exactly identical neurons (scores would all be 0 at the fit)
    equal = fit_poisson_fe(y, x, off, g)
    assert G - 1.5 < equal.df("cluster") <= G - 1
    y_dom = y.copy()
    y_dom[g == 0] = rng.poisson(40 * np.exp(off1 - 2.0 + 0.3 * x1))   # one neuron with ~40x the synapses
    dominated = fit_poisson_fe(y_dom, x, off, g)
    assert 1 <= dominated.df("cluster") < (G - 1) / 2
    assert dominated.df("model") == np.inf
    assert dominated.inference(0)["ci_high"] - dominated.inference(0)["estimate"] > \
        2.0 * dominated.se("cluster")[0]    # t quantile with few df
