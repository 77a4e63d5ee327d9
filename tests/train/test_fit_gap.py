"""experiments/train/fit_gap.py: per-checkpoint fits agree with what training logged."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.train.conftest import tiny_config
from twin.train import train

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "train" / "fit_gap.py"


def _fit_gap():
    spec = importlib.util.spec_from_file_location("fit_gap", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_checkpoint_fits_reproduce_the_logged_validation_correlation(rec_dir, tmp_path):
    run = train(tiny_config(rec_dir, keep_checkpoints=10), tmp_path / "run", progress=False)
    fits = _fit_gap().checkpoint_fits(run, n_train=4)
    assert sorted(fits.step.unique()) == [2, 4, 6]              # every kept checkpoint
    assert len(fits) == 3 * 2 * 5 and np.isfinite(fits.train).all()
    logged = {d["step"]: d["val_corr"] for d in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
              if "val_corr" in d}
    # training's val_corr: mean over scans of the mean per-neuron validation correlation
    at6 = fits[fits.step == 6].groupby("recording_id").validation.mean().mean()
    assert at6 == pytest.approx(logged[6], abs=1e-5)
    at2 = fits[fits.step == 2].groupby("recording_id").validation.mean().mean()
    assert at2 != pytest.approx(at6, abs=1e-6)                  # each checkpoint's own parameters


def test_fit_gap_without_checkpoints_says_so(rec_dir, tmp_path, capsys):
    run = train(tiny_config(rec_dir), tmp_path / "run", progress=False)
    shutil.rmtree(run / "checkpoints")
    assert _fit_gap().main([str(run), str(tmp_path / "unused.h5")]) == 1
    assert "no checkpoints kept" in capsys.readouterr().out
