"""The synthetic connectome: CAVE tables, real geometry (Ld from skeletons) and a planted rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from twin.config import from_dict
from twin.connectome.proximity import proximity_table, read_skeleton_dir
from twin.errors import InputError
from twin.simulate.connectome import BETA, ConnectomeConfig, simulate_connectome, write_skeleton_files

# The simulator module (twin.simulate.mouse) is imported inside the tests, where it is used.
NEURON_COLUMNS = ["pt_root_id", "nucleus_id", "recording_id", "session", "scan_idx", "unit_id", "area", "layer",
                  "cortical_x", "cortical_y", "cortical_z", "excitatory", "cell_class", "cell_type",
                  "phase_invariance", "bipartite_index"]

COLUMNS = {
    "synapses_pni_2": ["id", "pre_pt_root_id", "post_pt_root_id", "size", "ctr_pt_position", "pre_pt_position",
                       "post_pt_position"],
    "nucleus_detection_v0": ["id", "pt_root_id", "pt_position"],
    "coregistration_manual_v4": ["id", "pt_root_id", "pt_position", "session", "scan_idx", "unit_id", "field",
                                 "residual", "score"],
    "aibs_metamodel_celltypes_v661": ["pt_root_id", "classification_system", "cell_type"],
    "nucleus_functional_area_assignment": ["target_id", "pt_root_id", "tag", "value"],
    "proofreading_status_and_strategy": ["pt_root_id", "valid_id", "status_dendrite", "status_axon",
                                         "strategy_dendrite", "strategy_axon"],
    "proximity": ["pre_pt_root_id", "post_pt_root_id", "ld_um"],
}
PROOFREAD = ("axon_fully_extended", "axon_partially_extended")
ISOLATED = dict(proofread_fraction=1.0, coregistered_fraction=1.0, pre_effect_sd=0.0, n_background_cells=0,
                n_nonneuron_nuclei=0, duplicate_field_fraction=0.0, long_range_probability=0.0)


def make_neurons(n: int, rng: np.random.Generator, width: float = 300.0, hva: bool = False) -> pd.DataFrame:
    """``n`` imaged neurons in a ``width``-um square (right half HVA when ``hva``), two scans."""
    x = rng.uniform(0, width, n)
    area = np.where(hva & (x > width / 2), np.where(rng.uniform(size=n) < 0.5, "LM", "AL"), "V1")
    scan = 1 + (np.arange(n) >= n // 2)
    return pd.DataFrame({
        "pt_root_id": 864691135000000000 + rng.choice(10 ** 6, n, replace=False) * 1000 + 1,
        "nucleus_id": 100000 + np.arange(n), "recording_id": [f"29187-4-{s}" for s in scan], "session": 4,
        "scan_idx": scan, "unit_id": np.r_[np.arange(1, n // 2 + 1), np.arange(1, n - n // 2 + 1)], "area": area,
        "layer": "L2/3", "cortical_x": x, "cortical_y": rng.uniform(0, width, n),
        "cortical_z": rng.uniform(200, 400, n), "excitatory": rng.uniform(size=n) < 0.85, "cell_class": "simple",
        "cell_type": "23P", "phase_invariance": rng.uniform(0, 1, n), "bipartite_index": 0.0})[NEURON_COLUMNS]


def random_correlation(n: int, rng: np.random.Generator, k: int = 8) -> np.ndarray:
    """A valid correlation matrix (n, n): cosines of random k-dim vectors with a shared offset."""
    f = rng.normal(size=(n, k)) + 0.3
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    s = f @ f.T
    np.fill_diagonal(s, 1.0)
    return s


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    neurons = make_neurons(80, rng, 500.0, hva=True)
    cfg = ConnectomeConfig(n_background_cells=30, n_nonneuron_nuclei=5, duplicate_field_fraction=0.2,
                           long_range_probability=1.0, write_skeletons=True, proofread_fraction=0.5)
    s = random_correlation(80, rng)
    return neurons, s, cfg, simulate_connectome(neurons, s, cfg, 7)


def pairs(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Proximity rows with their synapse counts."""
    n = tables["synapses_pni_2"].groupby(["pre_pt_root_id", "post_pt_root_id"]).size().rename("n")
    return tables["proximity"].join(n, on=["pre_pt_root_id", "post_pt_root_id"]).fillna({"n": 0})


def test_tables_have_exactly_the_cave_columns_dtypes_and_voxel_vectors(small):
    *_, tables = small
    assert set(tables) == set(COLUMNS) | {"skeletons"}
    for name, cols in COLUMNS.items():
        t = tables[name]
        assert list(t.columns) == cols, name
        for c in cols:
            if c.endswith("_id") or c in ("id", "target_id", "valid_id", "session", "scan_idx", "field", "size"):
                assert t[c].dtype == np.int64, (name, c)
            if c.endswith("_position"):
                v = np.array(t[c].tolist())
                assert v.shape == (len(t), 3) and v.dtype == np.int64, (name, c)
    assert tables["nucleus_functional_area_assignment"].value.dtype == np.float64
    assert (tables["synapses_pni_2"]["size"] > 0).all() and (tables["proximity"].ld_um > 0).all()


def test_root_ids_agree_across_tables_and_imaged_neurons_keep_theirs(small):
    neurons, _, cfg, t = small
    nuc = t["nucleus_detection_v0"]
    assert nuc.pt_root_id.is_unique and nuc.id.is_unique
    assert len(nuc) == len(neurons) + cfg.n_background_cells + cfg.n_nonneuron_nuclei
    roots = set(nuc.pt_root_id)
    assert set(neurons.pt_root_id) <= roots
    for name, cols in (("synapses_pni_2", ["pre_pt_root_id", "post_pt_root_id"]), ("proximity", ["pre_pt_root_id",
                       "post_pt_root_id"]), ("proofreading_status_and_strategy", ["pt_root_id", "valid_id"]),
                       ("aibs_metamodel_celltypes_v661", ["pt_root_id"]),
                       ("nucleus_functional_area_assignment", ["pt_root_id"])):
        for c in cols:
            assert set(t[name][c]) <= roots, (name, c)
    assert set(t["coregistration_manual_v4"].pt_root_id) <= set(neurons.pt_root_id)
    area = t["nucleus_functional_area_assignment"]
    assert (area.set_index("pt_root_id").target_id.reindex(nuc.pt_root_id).to_numpy() == nuc.id.to_numpy()).all()
    imaged = area.set_index("pt_root_id").tag.reindex(neurons.pt_root_id)
    assert (imaged.to_numpy() == neurons.area.to_numpy()).all()
    glia = t["aibs_metamodel_celltypes_v661"].classification_system == "nonneuron"
    assert glia.sum() == cfg.n_nonneuron_nuclei
    syn_roots = set(t["synapses_pni_2"].pre_pt_root_id) | set(t["synapses_pni_2"].post_pt_root_id)
    assert not syn_roots & set(t["aibs_metamodel_celltypes_v661"].pt_root_id[glia])
    coreg = t["coregistration_manual_v4"].drop_duplicates("pt_root_id").merge(neurons, on="pt_root_id")
    assert (coreg.unit_id_x == coreg.unit_id_y).all() and (coreg.scan_idx_x == coreg.scan_idx_y).all()


def test_proximity_equals_ld_recomputed_from_the_written_swc_skeletons(small, tmp_path):
    *_, cfg, t = small
    write_skeleton_files(t["skeletons"], tmp_path)
    skels = read_skeleton_dir(tmp_path)
    assert set(skels) == set(t["skeletons"].pt_root_id)
    pr = t["proofreading_status_and_strategy"]
    pres = pr.pt_root_id[pr.strategy_axon.isin(PROOFREAD)]
    again = proximity_table(skels, pres, list(skels), cfg.radius_um, cfg.max_segment_um)
    got = t["proximity"].merge(again, on=["pre_pt_root_id", "post_pt_root_id"], how="outer")
    assert len(got) == len(t["proximity"]) == len(again) > 50
    np.testing.assert_allclose(got.ld_um_x, got.ld_um_y, rtol=1e-6)


def test_synapses_of_proofread_axons_sit_on_pairs_with_ld_and_next_to_the_axon(small):
    *_, cfg, t = small
    syn = t["synapses_pni_2"]
    pr = t["proofreading_status_and_strategy"]
    pres = set(pr.pt_root_id[pr.strategy_axon.isin(PROOFREAD)])
    mine = syn[syn.pre_pt_root_id.isin(pres)]
    assert len(mine) > 0
    near = mine.merge(t["proximity"], on=["pre_pt_root_id", "post_pt_root_id"], how="left")
    assert near.ld_um.notna().all()
    um = lambda c: np.array(mine[c].tolist()) * np.array([4, 4, 40]) / 1000.0  # noqa: E731
    gap = np.linalg.norm(um("pre_pt_position") - um("post_pt_position"), axis=1)
    assert gap.max() < cfg.radius_um + 2.0
    np.testing.assert_allclose(um("ctr_pt_position"), (um("pre_pt_position") + um("post_pt_position")) / 2, atol=0.05)


def test_long_range_axons_give_cross_region_pairs_ld(small):
    neurons, _, _, t = small
    area = t["nucleus_functional_area_assignment"].set_index("pt_root_id").tag
    px = t["proximity"]
    pre_v1 = area.reindex(px.pre_pt_root_id).to_numpy() == "V1"
    post_v1 = area.reindex(px.post_pt_root_id).to_numpy() == "V1"
    assert (pre_v1 & ~post_v1).sum() > 0 and (~pre_v1 & post_v1).sum() > 0


def test_only_the_configured_fraction_of_coregistered_excitatory_cells_has_a_proofread_axon(small):
    neurons, _, cfg, t = small
    pr = t["proofreading_status_and_strategy"]
    co = set(t["coregistration_manual_v4"].pt_root_id)
    exc = set(neurons.pt_root_id[neurons.excitatory]) & co
    axon = set(pr.pt_root_id[pr.strategy_axon.isin(PROOFREAD)])
    assert len(axon & exc) == round(cfg.proofread_fraction * len(exc))
    assert not axon & (set(neurons.pt_root_id) - exc)  # no inhibitory or non-co-registered imaged cell
    assert (pr.status_axon[pr.strategy_axon.isin(PROOFREAD)].isin(["clean", "extended"])).all()
    assert (pr.status_axon[~pr.strategy_axon.isin(PROOFREAD)] == "non").all()
    assert len(co) == round(cfg.coregistered_fraction * len(neurons))


def test_duplicate_coregistration_rows_exist_only_when_configured(small):
    neurons, s, cfg, t = small
    co = t["coregistration_manual_v4"]
    dup = co[co.pt_root_id.duplicated(keep=False)]
    assert co.pt_root_id.duplicated().sum() == round(cfg.duplicate_field_fraction * co.pt_root_id.nunique()) > 0
    assert (dup.groupby("pt_root_id").field.nunique() == 2).all()
    none = simulate_connectome(neurons, s, ConnectomeConfig(duplicate_field_fraction=0.0), 7)
    assert none["coregistration_manual_v4"].pt_root_id.is_unique


def test_same_seed_gives_identical_tables_and_another_seed_differs(small):
    neurons, s, cfg, t = small
    again = simulate_connectome(neurons, s, cfg, 7)
    for name in t:
        pd.testing.assert_frame_equal(again[name], t[name])
    other = simulate_connectome(neurons, s, cfg, 8)
    assert not other["proximity"].equals(t["proximity"])


@pytest.fixture(scope="module")
def glm_pairs():
    """Pairs (Ld > 0) of a dense V1 patch, generated with the published slope and with beta = 0."""
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    neurons = make_neurons(300, rng)
    s = random_correlation(300, rng)
    idx = pd.Series(np.arange(300), index=neurons.pt_root_id)
    fits = {}
    for beta in (BETA["V1->V1"], 0.0):
        d = pairs(simulate_connectome(neurons, s, ConnectomeConfig(beta={"V1->V1": beta}, **ISOLATED), 0))
        i, j = idx[d.pre_pt_root_id].to_numpy(), idx[d.post_pt_root_id].to_numpy()
        p = neurons.phase_invariance.to_numpy()
        x = sm.add_constant(np.column_stack([s[i, j], p[i], p[j]]))
        fit = sm.GLM(d.n.to_numpy(), x, family=sm.families.Poisson(), offset=np.log(d.ld_um.to_numpy())).fit()
        fits[beta] = (fit.params[1], *fit.conf_int()[1], int((d.n > 0).sum()), len(d))
    return fits


def test_poisson_glm_with_ld_offset_recovers_the_planted_v1_to_v1_slope(glm_pairs):
    est, lo, hi, connected, n = glm_pairs[BETA["V1->V1"]]
    assert connected > 300 and n > 10 * connected
    assert lo > 0 and lo <= BETA["V1->V1"] <= hi, (est, lo, hi)


def test_beta_zero_gives_a_null_connectome_whose_slope_ci_covers_zero(glm_pairs):
    est, lo, hi, *_ = glm_pairs[0.0]
    assert lo <= 0 <= hi, (est, lo, hi)


@pytest.fixture(scope="module")
def default_population():
    """The default preset's 600 neurons with similarities like the true ones (mean ~0.12, s.d. ~0.14)."""
    from twin.simulate import preset
    from twin.simulate.population import sample_population

    neurons = sample_population(preset("default"), np.random.default_rng(0))[NEURON_COLUMNS]
    f = np.random.default_rng(1).normal(size=(len(neurons), 50)) + 0.37
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return neurons, f @ f.T


def edge_pairs(neurons: pd.DataFrame, s: np.ndarray, t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The analysis' pairs with Ld > 0 (co-registered proofread pre x co-registered post) with
    synapse counts, similarity ``s`` and projection."""
    co = set(t["coregistration_manual_v4"].pt_root_id)
    pr = t["proofreading_status_and_strategy"]
    pres = co & set(pr.pt_root_id[pr.strategy_axon.isin(PROOFREAD)])
    d = pairs(t)
    d = d[d.pre_pt_root_id.isin(pres) & d.post_pt_root_id.isin(co)].reset_index(drop=True)
    idx = pd.Series(np.arange(len(neurons)), index=neurons.pt_root_id)
    i, j = idx[d.pre_pt_root_id].to_numpy(), idx[d.post_pt_root_id].to_numpy()
    region = np.where(neurons.area.to_numpy() == "V1", "V1", "HVA").astype(object)
    d["s"], d["projection"] = s[i, j], region[i] + "->" + region[j]
    return d


def test_published_like_defaults_give_about_34_adp_pairs_per_connected_pair(default_population):
    """ConnectomeConfig's own defaults (the `large` preset's) keep the published sparsity."""
    neurons, s = default_population
    d = pairs(simulate_connectome(neurons, s, ConnectomeConfig(), 0))
    ratio = (d.n == 0).sum() / (d.n > 0).sum()
    assert 20 < ratio < 55, ratio


def test_default_preset_connectome_has_enough_connected_pairs_to_fit_every_projection(default_population):
    """The demo mouse: >= 300 connected pairs in V1->V1 and HVA->HVA and >= 60 across regions in
    the edge table, and the planted V1->V1 / HVA->HVA slopes are detected with pre intercepts."""
    from twin.analysis.fe_poisson import fit_poisson_fe
    from twin.simulate import preset
    from twin.simulate.config import connectome_config

    neurons, s = default_population
    cfg = connectome_config(preset("default"))
    assert cfg.base_density > ConnectomeConfig().base_density  # the demo departs from the published density
    d = edge_pairs(neurons, s, simulate_connectome(neurons, s, cfg, 0))
    connected = d[d.n > 0].groupby("projection").size()
    assert connected["V1->V1"] >= 300 and connected["HVA->HVA"] >= 300, connected.to_dict()
    assert connected["V1->HVA"] >= 60 and connected["HVA->V1"] >= 60, connected.to_dict()
    for proj in ("V1->V1", "HVA->HVA"):
        g = d[d.projection == proj]
        res = fit_poisson_fe(g.n.to_numpy(), g.s.to_numpy(), np.log(g.ld_um.to_numpy()),
                             g.pre_pt_root_id.to_numpy()).inference()
        assert res["p"] < 1e-3 and res["ci_low"] > 0, (proj, res)
        assert res["ci_low"] - 0.3 < BETA[proj] < res["ci_high"] + 0.3, (proj, res)


def test_lateral_scale_packs_the_em_frame_and_adds_proximity(default_population):
    neurons, s = default_population
    cfg = dict(n_background_cells=0, n_nonneuron_nuclei=0)
    sub = neurons.iloc[:200].reset_index(drop=True)  # one scan
    wide = simulate_connectome(sub, s[:200, :200], ConnectomeConfig(**cfg), 0)
    packed = simulate_connectome(sub, s[:200, :200], ConnectomeConfig(lateral_scale=0.5, **cfg), 0)
    xy = lambda t: np.array(t["nucleus_detection_v0"].pt_position.tolist())[:, :2] * 4 / 1000.0  # noqa: E731
    np.testing.assert_allclose(xy(packed) - xy(packed).mean(0), 0.5 * (xy(wide) - xy(wide).mean(0)), atol=0.01)
    assert len(packed["proximity"]) > 1.5 * len(wide["proximity"])


def test_config_fills_missing_betas_and_rejects_bad_values_naming_the_key():
    cfg = from_dict(ConnectomeConfig, {"beta": {"V1->V1": 0.0}, "base_density": 0.01})
    assert cfg.beta == {**BETA, "V1->V1": 0.0} and cfg.base_density == 0.01
    assert ConnectomeConfig() == from_dict(ConnectomeConfig, {})
    for bad, key in (({"proofread_fraction": 1.5}, "connectome.proofread_fraction"),
                     ({"base_density": 0.0}, "connectome.base_density"),
                     ({"beta": {"V1->LM": 1.0}}, "connectome.beta.V1->LM"),
                     ({"n_background_cells": -1}, "connectome.n_background_cells")):
        with pytest.raises(InputError) as e:
            from_dict(ConnectomeConfig, bad)
        assert e.value.field == key
    with pytest.raises(InputError, match="similarity"):
        simulate_connectome(make_neurons(5, np.random.default_rng(0)), np.eye(4), ConnectomeConfig(), 0)


def test_simulate_tiny_writes_every_connectome_table_skeletons_and_the_resolved_config(tmp_path):
    from twin.simulate import preset
    from twin.simulate.mouse import NEURON_COLUMNS as USED, simulate

    assert USED == NEURON_COLUMNS
    out = simulate(preset("tiny", ["connectome.write_skeletons=true", "connectome.beta.HVA->V1=0.5"]),
                   tmp_path / "sim", progress=False)
    folder = out / "connectome"
    for name, cols in COLUMNS.items():
        assert list(pd.read_parquet(folder / f"{name}.parquet").columns) == cols
    nuc = pd.read_parquet(folder / "nucleus_detection_v0.parquet")
    assert {int(p.stem) for p in (folder / "skeletons").glob("*.swc")} <= set(nuc.pt_root_id)
    params = json.loads((out / "truth" / "params.json").read_text())["connectome"]
    assert params["beta"] == {**BETA, "HVA->V1": 0.5} and params["write_skeletons"] is True
    assert set(params) == set(ConnectomeConfig.__dataclass_fields__)
    units = pd.read_parquet(out / "truth" / "units.parquet")
    pr = pd.read_parquet(folder / "proofreading_status_and_strategy.parquet")
    axon = set(pr.pt_root_id[pr.strategy_axon.isin(PROOFREAD)])
    assert (units.has_proofread_axon == units.pt_root_id.isin(axon)).all() and units.has_proofread_axon.any()
