"""Small synthetic edge tables with planted effects (twin.analysis.synthetic)."""

from __future__ import annotations

import pytest

from twin.analysis.synthetic import synthetic_edges

N_PRE = {"V1->V1": 12, "HVA->HVA": 12, "V1->HVA": 10, "HVA->V1": 8}
N_CONN = {"V1->V1": 300, "HVA->HVA": 200, "V1->HVA": 150, "HVA->V1": 120}
BETA = {"V1->V1": 2.3, "HVA->HVA": 1.0, "V1->HVA": 2.0, "HVA->V1": 1.6}


def small_edges(seed: int = 0, **kw):
    """~30k pairs: published-like structure at a tenth of the size, Ld = 0 pairs included."""
    args = {"n_pre": N_PRE, "n_connected": N_CONN, "beta": BETA, "same_region_per_pre": 20}
    args.update(kw)
    return synthetic_edges(seed, **args)


@pytest.fixture(scope="package")
def edges():
    """Planted: like-to-like slopes BETA, post > pre phase invariance (+0.2), connected pairs'
    MEI similarity +0.06, lower invariance -> more connections, synapse size slope."""
    return small_edges(0, invariance_shift=0.2, mei_shift=0.06, degree_invariance=-1.5, size_beta=0.5)
