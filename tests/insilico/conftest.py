"""Fixtures: a small planted Gabor population (simple, complex and direction cells)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fake():
    from twin.insilico.testing import GaborPopulation

    return GaborPopulation(n=12, seed=0)


@pytest.fixture(scope="session")
def fake_units(fake):
    from twin.insilico.common import unit_table

    return unit_table(fake, fake.recording_ids())


@pytest.fixture(scope="session")
def tuning_result(fake, fake_units):
    from twin.insilico.config import TuningConfig
    from twin.insilico.tuning import run_tuning

    cfg = TuningConfig(n_directions=16, n_frames=22, sf_list=(0.02, 0.04, 0.08), tf_list=(1.0, 2.0),
                       n_permutations=100)
    return run_tuning(fake, fake_units, cfg, seed=0)


@pytest.fixture(scope="session")
def mei_result(fake, fake_units):
    from twin.insilico.config import MEIConfig
    from twin.insilico.mei import run_mei

    return run_mei(fake, fake_units, MEIConfig(n_steps=80, n_frames=6, n_random=4), seed=0)
