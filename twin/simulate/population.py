"""Planting the population: where each neuron sits, what it is, and what it is tuned to.

One row per neuron with every planted parameter (the future ``truth/units.parquet``). The
cortical volume holds V1 (x < ``v1_width_um``) and, lateral to it, LM (low y), AL (middle)
and RL (high y). Retinotopy: V1 azimuth grows with x and elevation with y; the HVAs mirror
azimuth at the V1 border with 1.2x the V1 scale (degrees per um), plus scatter. Each scan is a
slab at one depth; layers follow depth (L2/3 < 350 um <= L4 < 500 <= L5 < 700 <= L6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin.data.recording import recording_id
from twin.simulate.config import SimConfig

CLASSES = ("simple", "complex", "direction", "bipartite")
#: P(cell_class | layer) for excitatory cells (simple, complex, direction, bipartite)
EXC_CLASS_P = {"L2/3": (0.25, 0.35, 0.15, 0.25), "L4": (0.5, 0.25, 0.15, 0.10),
               "L5": (0.15, 0.5, 0.25, 0.10), "L6": (0.3, 0.4, 0.2, 0.10)}
INH_CLASS_P = (0.1, 0.8, 0.1, 0.0)
EXC_TYPES = {"L2/3": ("23P",), "L4": ("4P",), "L5": ("5P-IT", "5P-ET", "5P-NP"), "L6": ("6P-IT", "6P-CT")}
INH_TYPES = ("BC", "MC", "BPC", "NGC")
#: area -> (SF median cpd, TF median Hz, RF size factor)
AREA_TUNING = {"V1": (0.05, 1.5, 1.0), "LM": (0.055, 1.5, 1.3), "AL": (0.035, 2.5, 1.6),
               "RL": (0.035, 2.5, 1.7)}
N_TEXTURE_POSITIONS = 4
ROOT_ID_BASE = 864691135000000000


def layer_of_depth(z_um: np.ndarray) -> np.ndarray:
    """Cortical layer name for each depth (um below the pia)."""
    z = np.asarray(z_um)
    return np.select([z < 350, z < 500, z < 700], ["L2/3", "L4", "L5"], "L6").astype(object)


def area_of_position(x_um: np.ndarray, y_um: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Visual area of each cortical (x, y) position in um."""
    p = cfg.population
    y_frac = np.asarray(y_um) / p.volume_um[1]
    hva = np.select([y_frac < 0.35, y_frac < 0.65], ["LM", "AL"], "RL")
    return np.where(np.asarray(x_um) < p.v1_width_um, "V1", hva).astype(object)


def retinotopy(x_um: np.ndarray, y_um: np.ndarray, area: np.ndarray, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free RF centre (azimuth, elevation) in degrees for cortical positions (um)."""
    p = cfg.population
    m = p.deg_per_um
    xc, yc = p.v1_width_um / 2, p.volume_um[1] / 2
    az_v1 = (np.asarray(x_um) - xc) * m
    az_border = (p.v1_width_um - xc) * m
    az_hva = az_border - (np.asarray(x_um) - p.v1_width_um) * 1.2 * m
    is_v1 = np.asarray(area) == "V1"
    az = np.where(is_v1, az_v1, az_hva)
    el = (np.asarray(y_um) - yc) * m * np.where(is_v1, 1.0, 1.2)
    return az, el


def _lognormal(rng: np.random.Generator, median: np.ndarray, sigma: float, size: int) -> np.ndarray:
    return np.asarray(median) * np.exp(sigma * rng.standard_normal(size))


def sample_population(cfg: SimConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Draw every neuron and its planted parameters.

    Returns one row per neuron (scans in order, ``unit_id`` 1..n within a scan) with
    identity columns (recording_id, animal_id, session, scan_idx, unit_id, pt_root_id,
    nucleus_id), anatomy (area, layer, cortical_x/y/z um, excitatory, cell_type, cell_class)
    and tuning (pref_dir_deg, pref_ori_deg, sf_cpd, tf_hz, phase_deg, rf_x_deg, rf_y_deg,
    rf_sigma_deg, phase_invariance, direction_strength, texture_*, bipartite_index,
    baseline_hz, amplitude_hz, threshold, beta_running, beta_pupil, noise_sd).
    """
    p, s = cfg.population, cfg.stimulus
    n_scan, n_per = p.n_scans, p.neurons_per_scan
    n = n_scan * n_per
    scan_idx = np.repeat(np.arange(1, n_scan + 1), n_per)
    depths = (np.linspace(*p.depth_range_um, n_scan) if n_scan > 1 else np.array([np.mean(p.depth_range_um)]))
    x = rng.uniform(0, p.volume_um[0], n)
    y = rng.uniform(0, p.volume_um[1], n)
    z = np.clip(depths[scan_idx - 1] + rng.uniform(-1, 1, n) * p.scan_depth_spread_um, 60, 950)
    area = area_of_position(x, y, cfg)
    layer = layer_of_depth(z)
    exc = rng.uniform(size=n) < p.excitatory_fraction
    cls = np.empty(n, object)
    ctype = np.empty(n, object)
    for i in range(n):
        probs = np.array(EXC_CLASS_P[layer[i]] if exc[i] else INH_CLASS_P, float)
        probs[3] *= p.bipartite_scale
        cls[i] = CLASSES[rng.choice(4, p=probs / probs.sum())]
        ctype[i] = rng.choice(EXC_TYPES[layer[i]]) if exc[i] else rng.choice(INH_TYPES)
    az, el = retinotopy(x, y, area, cfg)
    rf_x = az + rng.normal(0, p.rf_scatter_deg, n)
    rf_y = el + rng.normal(0, p.rf_scatter_deg, n)
    sf_med = np.array([AREA_TUNING[a][0] for a in area])
    tf_med = np.array([AREA_TUNING[a][1] for a in area])
    size_f = np.array([AREA_TUNING[a][2] for a in area])
    nyquist = 0.5 / s.pixel_size_deg
    sf = np.clip(_lognormal(rng, sf_med, 0.3, n), 0.015, 0.45 * nyquist)
    tf = np.clip(_lognormal(rng, tf_med, 0.35, n), 0.5, 0.25 * s.frame_rate)
    sigma = np.clip(rng.uniform(0.3, 0.45, n) / sf * np.sqrt(size_f), 3.0, 25.0)
    sigma = np.where(exc, sigma, sigma * 1.3)
    pref_dir = rng.uniform(0, 360, n)
    is_ = {c: cls == c for c in CLASSES}
    phase_inv = np.select([is_["simple"], is_["complex"], is_["direction"]],
                          [rng.uniform(0, 0.03, n), rng.uniform(0.8, 1.0, n), rng.uniform(0.3, 0.9, n)],
                          rng.uniform(0, 0.03, n))
    dir_strength = np.where(is_["direction"], rng.uniform(0.7, 1.0, n), rng.uniform(0, 0.25, n))
    tex_w = np.where(is_["bipartite"], rng.uniform(0.6, 1.5, n), 0.0)
    tex_angle = rng.uniform(0, 2 * np.pi, n)
    tex_dist = rng.uniform(1.6, 2.2, n) * sigma
    df = pd.DataFrame({
        "recording_id": [recording_id(cfg.animal_id, cfg.session, k) for k in scan_idx],
        "animal_id": str(cfg.animal_id),
        "session": np.full(n, cfg.session, np.int64),
        "scan_idx": scan_idx.astype(np.int64),
        "unit_id": np.tile(np.arange(1, n_per + 1), n_scan).astype(np.int64),
        "pt_root_id": ROOT_ID_BASE + rng.choice(10 ** 9, n, replace=False).astype(np.int64) * 1000 + 1,
        "nucleus_id": (100000 + rng.choice(600000, n, replace=False)).astype(np.int64),
        "area": area.astype(str), "layer": layer.astype(str),
        "cortical_x": x, "cortical_y": y, "cortical_z": z,
        "excitatory": exc, "cell_type": ctype.astype(str), "cell_class": cls.astype(str),
        "pref_dir_deg": pref_dir, "pref_ori_deg": pref_dir % 180.0,
        "sf_cpd": sf, "tf_hz": tf, "phase_deg": rng.uniform(0, 360, n),
        "rf_x_deg": rf_x, "rf_y_deg": rf_y, "rf_sigma_deg": sigma,
        "phase_invariance": phase_inv, "direction_strength": dir_strength,
        "texture_weight": tex_w,
        "texture_x_deg": np.where(is_["bipartite"], rf_x + tex_dist * np.cos(tex_angle), np.nan),
        "texture_y_deg": np.where(is_["bipartite"], rf_y + tex_dist * np.sin(tex_angle), np.nan),
        "texture_ori_deg": np.where(is_["bipartite"], rng.uniform(0, 180, n), np.nan),
        "texture_sf_cpd": np.where(is_["bipartite"], np.minimum(sf * rng.uniform(1.2, 2.0, n), 0.45 * nyquist), np.nan),
        "texture_sigma_deg": np.where(is_["bipartite"], 0.6 * sigma, np.nan),
        "bipartite_index": tex_w / (1.0 + tex_w),
        "baseline_hz": np.where(exc, _lognormal(rng, 0.5, 0.5, n), _lognormal(rng, 2.0, 0.5, n)),
        "amplitude_hz": np.where(exc, _lognormal(rng, 6.0, 0.4, n), _lognormal(rng, 12.0, 0.4, n)),
        "threshold": rng.uniform(0.0, 1.0, n),
        "beta_running": rng.normal(0.35, 0.25, n),
        "beta_pupil": rng.normal(0.1, 0.15, n),
        "noise_sd": cfg.observation.noise_sd * np.exp(cfg.observation.noise_spread * rng.standard_normal(n)),
        "has_proofread_axon": False,  # set from the connectome's proofreading table when written
    })
    return df
