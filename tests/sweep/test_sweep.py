"""Sweeps: the trials a file expands into, failures recorded, resume, the leaderboard."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import xarray as xr

from twin.errors import InputError
from twin.sweep.config import expand_trials, load_sweep, trial_id
from twin.sweep.run import run_sweep

FAKE = textwrap.dedent('''
    import json, sys, pathlib
    args = sys.argv[1:]
    out = pathlib.Path(args[args.index("--out") + 1])
    sets = {}
    for i, x in enumerate(args):
        if x == "--set":
            k, v = args[i + 1].split("=", 1)
            sets[k] = json.loads(v)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "runs.txt", "a") as f:
        f.write("x")
    if sets["train.lr"] == 0.5:
        sys.exit("loss became nan at step 3")
    score = -(sets["train.lr"] - 0.01) ** 2 + 0.001 * sets.get("model.channels", 0)
    (out / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\\n" + json.dumps({"val_corr": score}) + "\\n")
''')


def _sweep(tmp_path: Path, body: str) -> Path:
    (tmp_path / "fake.py").write_text(FAKE)
    (tmp_path / "cfg.toml").write_text("[train]\nsteps = 1\n")
    p = tmp_path / "s.toml"
    p.write_text(f'config = "cfg.toml"\nargv = ["{sys.executable}", "{tmp_path / "fake.py"}", "{{config}}", '
                 f'"--out", "{{out}}"]\n{body}')
    return p


GRID = '[grid]\n"train.lr" = [0.001, 0.01, 0.5]\n"model.channels" = [4, 8]\n'


def test_grid_expands_to_every_combination_in_a_stable_order(tmp_path):
    cfg, _ = load_sweep(_sweep(tmp_path, GRID))
    trials = expand_trials(cfg)
    assert len(trials) == 6 and trials[0] == {"train.lr": 0.001, "model.channels": 4}
    assert len({trial_id(t) for t in trials}) == 6


def test_random_search_is_deterministic_by_seed_and_respects_bounds(tmp_path):
    body = 'method = "random"\nn_trials = 20\n[space]\n"train.lr" = {low = 1e-3, high = 1e-1, log = true}\n' \
           '"model.channels" = {choices = [4, 8, 16]}\n'
    a = expand_trials(load_sweep(_sweep(tmp_path, body))[0])
    b = expand_trials(load_sweep(_sweep(tmp_path, body))[0])
    c = expand_trials(load_sweep(_sweep(tmp_path, body.replace("n_trials", "seed = 1\nn_trials")))[0])
    assert a == b and a != c
    assert all(1e-3 <= t["train.lr"] <= 1e-1 and t["model.channels"] in (4, 8, 16) for t in a)


def test_a_failing_trial_is_recorded_and_the_rest_go_on(tmp_path):
    p = _sweep(tmp_path, GRID)
    cfg, base = load_sweep(p)
    board = run_sweep(cfg, base, tmp_path / "out", expand_trials(cfg), workers=2)
    assert (board.status == "ok").sum() == 4 and (board.status == "failed").sum() == 2
    failed = board[board.status == "failed"]
    assert failed["train.lr"].eq(0.5).all() and failed.error.str.contains("exit code").all()
    rec = json.loads((tmp_path / "out" / "trials" / failed.trial.iloc[0] / "trial.json").read_text())
    assert "nan" in rec["log_tail"]
    # best first: lr 0.01 with 8 channels
    assert board.iloc[0]["train.lr"] == 0.01 and board.iloc[0]["model.channels"] == 8 and board.iloc[0]["rank"] == 1


def test_rerunning_skips_finished_trials_and_retries_failed_ones(tmp_path):
    p = _sweep(tmp_path, GRID)
    cfg, base = load_sweep(p)
    trials = expand_trials(cfg)
    run_sweep(cfg, base, tmp_path / "out", trials)
    (tmp_path / "out" / "trials" / trial_id(trials[1]) / "trial.json").unlink()  # killed mid-trial
    run_sweep(cfg, base, tmp_path / "out", trials)
    runs = {trial_id(t): (tmp_path / "out" / "trials" / trial_id(t) / "runs.txt").read_text() for t in trials}
    assert runs[trial_id(trials[0])] == "x"        # done: skipped
    assert runs[trial_id(trials[1])] == "xx"       # unfinished: run again
    assert runs[trial_id(trials[4])] == "xx"       # lr 0.5 failed: retried
    run_sweep(cfg, base, tmp_path / "out", trials, retry_failed=False)
    assert (tmp_path / "out" / "trials" / trial_id(trials[4]) / "runs.txt").read_text() == "xx"


def test_changing_the_shared_config_reruns_trials_and_another_sweep_is_refused(tmp_path):
    p = _sweep(tmp_path, GRID)
    cfg, base = load_sweep(p)
    trials = expand_trials(cfg)[:1]
    run_sweep(cfg, base, tmp_path / "out", trials)
    (tmp_path / "cfg.toml").write_text("[train]\nsteps = 2\n")
    run_sweep(cfg, base, tmp_path / "out", trials)
    assert (tmp_path / "out" / "trials" / trial_id(trials[0]) / "runs.txt").read_text() == "x"  # cleared, ran again
    other = load_sweep(p, ["name='other'"])[0]
    with pytest.raises(InputError, match="sweep"):
        run_sweep(other, base, tmp_path / "out", trials)
    run_sweep(other, base, tmp_path / "out", trials, force=True)


def test_leaderboard_csv_and_netcdf_hold_the_same_trials(tmp_path):
    p = _sweep(tmp_path, GRID)
    cfg, base = load_sweep(p)
    board = run_sweep(cfg, base, tmp_path / "out", expand_trials(cfg))
    ds = xr.load_dataset(tmp_path / "out" / "leaderboard.nc", engine="h5netcdf")
    assert list(ds["trial"].values) == list(board.trial)
    assert ds["metric"].values[0] == pytest.approx(board.metric.iloc[0])
    assert ds.attrs["metric"] == "val_corr"


def test_bad_sweep_files_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="grid"):
        load_sweep(_sweep(tmp_path, ""))
    with pytest.raises(InputError, match="space.train.lr"):
        load_sweep(_sweep(tmp_path, 'method = "random"\n[space]\n"train.lr" = {low = 1}\n'))


def test_sweep_cli_runs_and_its_help_lists_every_option(tmp_path, capsys):
    from twin.cli import main

    p = _sweep(tmp_path, '[grid]\n"train.lr" = [0.01]\n')
    assert main(["sweep", str(p), "--out", str(tmp_path / "o")]) == 0
    assert "1 ok, 0 failed" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    for opt in ("--out", "--executor", "--workers", "--set", "--no-retry", "--force", "--dry-run"):
        assert opt in out


def test_ray_executor_runs_trials_on_a_local_ray(tmp_path):
    import ray  # in the dev extra: the Ray executor is always tested

    p = _sweep(tmp_path, '[grid]\n"train.lr" = [0.01, 0.5]\n')
    cfg, base = load_sweep(p)
    try:
        ray.init(num_cpus=1, include_dashboard=False)
        board = run_sweep(cfg, base, tmp_path / "out", expand_trials(cfg), executor="ray")
    finally:
        ray.shutdown()
    assert sorted(board.status) == ["failed", "ok"]
