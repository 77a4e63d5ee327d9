"""The scorer's small helpers on hand-made inputs."""

from __future__ import annotations

import numpy as np


def test_first_pc_share_is_one_for_rank_one_responses_and_small_for_independent_ones():
    from twin.insilico.score import _first_pc_share

    rng = np.random.default_rng(0)
    t = rng.standard_normal(500)
    rank1 = np.outer(rng.uniform(0.5, 2.0, 20), t) + rng.uniform(0, 1, (20, 1))   # scale and offset per unit
    assert np.isclose(_first_pc_share(rank1), 1.0)
    indep = rng.standard_normal((20, 5000))
    assert _first_pc_share(indep) < 0.1
    # one shared component carrying half of every unit's variance
    half = (t[None] + rng.standard_normal((20, 500))) / np.sqrt(2)
    assert 0.4 < _first_pc_share(half) < 0.65
    # constant units are dropped, not divided by zero
    assert np.isclose(_first_pc_share(np.vstack([rank1, np.ones((3, 500))])), 1.0)


def test_rho_is_none_for_constant_or_too_short_inputs():
    from twin.insilico.score import _rho

    assert _rho([1, 2, 3, 4], [2, 4, 6, 9]) == 1.0
    assert _rho([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert _rho([1, 1, 1, 1], [1, 2, 3, 4]) is None
    assert _rho([1, np.nan, 3], [1, 2, 3]) is None
