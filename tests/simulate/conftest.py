"""One tiny simulation shared by the simulator tests (written through the CLI)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_sim(tmp_path_factory):
    from twin.cli import main

    out = tmp_path_factory.mktemp("sim") / "tiny"
    assert main(["simulate", "--preset", "tiny", "--seed", "3", "--quiet", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def truth(tiny_sim):
    from twin.simulate import load_truth_model

    return load_truth_model(tiny_sim)
