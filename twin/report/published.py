"""Published like-to-like slopes (Ding et al., Nature 2025; SCIENCE.md section 5).

Change in log synapse density per unit of the similarity measure, synaptic scale (Poisson GLMM
with offset log Ld), per projection. RF distance was ~0 with mixed signs (no fixed value).
"""

from __future__ import annotations

PROJECTIONS = ("V1->V1", "HVA->HVA", "V1->HVA", "HVA->V1")

PUBLISHED_SLOPES: dict[str, dict[str, float | None]] = {
    "signal_correlation": {"V1->V1": 2.30, "HVA->HVA": 1.04, "V1->HVA": 1.99, "HVA->V1": 1.60},
    "feature_cosine": {"V1->V1": 2.22, "HVA->HVA": 1.40, "V1->HVA": 1.75, "HVA->V1": 1.95},
    "rf_distance": {"V1->V1": 0.0, "HVA->HVA": 0.0, "V1->HVA": 0.0, "HVA->V1": 0.0},
}
PUBLISHED_N_PRE = {"V1->V1": 36, "HVA->HVA": 99, "V1->HVA": 29, "HVA->V1": 90}
PUBLISHED_N_CONNECTED = {"V1->V1": 2411, "HVA->HVA": 2543, "V1->HVA": 515, "HVA->V1": 1139}

MEASURE_NAMES = {"signal_correlation": "in-silico signal correlation",
                 "feature_cosine": "readout feature similarity",
                 "rf_distance": "RF centre distance",
                 "ori_difference": "preferred-orientation difference",
                 "mei_similarity": "MEI similarity", "vei_similarity": "VEI similarity",
                 "phase_invariance": "phase invariance", "bipartite_index": "bipartite invariance index",
                 "vei_diversity": "VEI diversity",
                 "pre_phase_invariance": "presynaptic phase invariance",
                 "pre_bipartite_index": "presynaptic bipartite invariance index",
                 "pre_vei_diversity": "presynaptic VEI diversity"}


def published_slope(measure: str, projection: str) -> float | None:
    """The published slope for ``measure`` (a twin.similarity kind) and ``projection``, or None."""
    return PUBLISHED_SLOPES.get(measure, {}).get(projection)
