"""The stage cache: skip what is done, re-run only what changed downstream, resume, refuse
to overwrite another pipeline's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin.errors import InputError
from twin.pipeline.runner import Stage, StageContext, run_stages


class Fakes:
    """Stage functions that count their calls and write a file into their folder."""

    def __init__(self):
        self.calls: list[str] = []
        self.fail: dict[str, BaseException] = {}
        self.resumed: list[str] = []

    def fn(self, name):
        def run(ctx: StageContext):
            self.calls.append(name)
            if ctx.resume:
                self.resumed.append(name)
            ctx.out_dir.mkdir(parents=True, exist_ok=True)
            for d, p in ctx.inputs.items():
                assert (p / "out.txt").is_file(), f"{name} ran before its input {d} was written"
            (ctx.out_dir / "progress.txt").write_text("started")  # e.g. a checkpoint
            if name in self.fail:
                raise self.fail.pop(name)
            (ctx.out_dir / "out.txt").write_text(json.dumps(ctx.section))
            return {"n": len(self.calls)}
        return run

    def stages(self, **sections):
        spec = [("simulate", ()), ("train", ("simulate",)), ("evaluate", ("simulate", "train")),
                ("insilico", ("train",)), ("analyze", ("simulate", "evaluate", "insilico")),
                ("report", ("simulate", "train", "evaluate", "insilico", "analyze"))]
        return [Stage(n, d, self.fn(n), sections.get(n, {"x": 1}), resumable=(n == "train")) for n, d in spec]


def _run(f: Fakes, out: Path, **kw):
    sections = kw.pop("sections", {})
    return run_stages(f.stages(**sections), out, name=kw.pop("name", "p"), **kw)


def test_second_run_skips_every_finished_stage(tmp_path):
    f = Fakes()
    first = _run(f, tmp_path / "o")
    assert [r["action"] for r in first.values()] == ["ran"] * 6
    f.calls.clear()
    second = _run(f, tmp_path / "o")
    assert f.calls == [] and [r["action"] for r in second.values()] == ["cached"] * 6


def test_changing_one_setting_reruns_that_stage_and_only_its_dependents(tmp_path):
    f = Fakes()
    _run(f, tmp_path / "o")
    f.calls.clear()
    res = _run(f, tmp_path / "o", sections={"insilico": {"x": 2}})
    assert f.calls == ["insilico", "analyze", "report"]
    assert res["simulate"]["action"] == res["train"]["action"] == res["evaluate"]["action"] == "cached"
    assert json.loads((tmp_path / "o" / "insilico" / "out.txt").read_text()) == {"x": 2}


def test_changing_the_seed_reruns_everything(tmp_path):
    f = Fakes()
    _run(f, tmp_path / "o")
    f.calls.clear()
    _run(f, tmp_path / "o", seed=1)
    assert len(f.calls) == 6


def test_interrupted_resumable_stage_resumes_in_its_folder_and_upstream_stays_cached(tmp_path):
    f = Fakes()
    f.fail["train"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        _run(f, tmp_path / "o")
    man = tmp_path / "o" / "manifests"
    assert (man / "simulate.json").is_file() and not (man / "train.json").exists()
    assert (man / "train.partial.json").is_file()
    f.calls.clear()
    res = _run(f, tmp_path / "o")
    assert f.calls == ["train", "evaluate", "insilico", "analyze", "report"]
    assert f.resumed == ["train"] and res["train"]["action"] == "resumed"
    assert not (man / "train.partial.json").exists()


def test_interrupted_stage_that_cannot_resume_starts_from_an_empty_folder(tmp_path):
    f = Fakes()
    f.fail["evaluate"] = RuntimeError("boom")
    with pytest.raises(RuntimeError):
        _run(f, tmp_path / "o")
    (tmp_path / "o" / "evaluate" / "stale.txt").write_text("half-written")
    f.calls.clear()
    res = _run(f, tmp_path / "o")
    assert res["evaluate"]["action"] == "ran" and f.resumed == []
    assert not (tmp_path / "o" / "evaluate" / "stale.txt").exists()


def test_a_failed_stage_leaves_no_manifest_so_it_is_never_taken_as_done(tmp_path):
    f = Fakes()
    _run(f, tmp_path / "o")
    f.fail["analyze"] = RuntimeError("boom")
    with pytest.raises(RuntimeError):
        _run(f, tmp_path / "o", sections={"analyze": {"x": 5}})
    assert not (tmp_path / "o" / "manifests" / "analyze.json").exists()
    assert not (tmp_path / "o" / "manifests" / "report.json").exists() or \
        json.loads((tmp_path / "o" / "manifests" / "report.json").read_text())["key"]
    f.calls.clear()
    _run(f, tmp_path / "o", sections={"analyze": {"x": 5}})
    assert f.calls == ["analyze", "report"]


def test_rerun_forces_a_stage_and_its_dependents(tmp_path):
    f = Fakes()
    _run(f, tmp_path / "o")
    f.calls.clear()
    _run(f, tmp_path / "o", rerun=["evaluate"])
    assert f.calls == ["evaluate", "analyze", "report"]


def test_an_interrupted_forced_rerun_still_invalidates_downstream(tmp_path):
    f = Fakes()
    _run(f, tmp_path / "o")
    f.fail["train"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        _run(f, tmp_path / "o", rerun=["train"])
    f.calls.clear()
    res = _run(f, tmp_path / "o")
    assert res["simulate"]["action"] == "cached" and res["train"]["action"] == "resumed"
    assert f.calls == ["train", "evaluate", "insilico", "analyze", "report"]


def test_another_pipeline_in_the_same_folder_is_refused_unless_forced(tmp_path):
    f = Fakes()
    _run(f, tmp_path / "o", name="first")
    with pytest.raises(InputError, match="first"):
        _run(f, tmp_path / "o", name="second")
    f.calls.clear()
    _run(f, tmp_path / "o", name="second", force=True)
    assert len(f.calls) == 6
    assert json.loads((tmp_path / "o" / "pipeline.json").read_text())["name"] == "second"


def test_a_foreign_non_empty_folder_is_refused(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="non-empty"):
        _run(Fakes(), tmp_path / "o")
    assert (tmp_path / "o" / "thesis.tex").read_text() == "precious"


def test_until_stops_and_dry_run_writes_nothing(tmp_path):
    f = Fakes()
    res = _run(f, tmp_path / "o", until="train")
    assert list(res) == ["simulate", "train"] and f.calls == ["simulate", "train"]
    f.calls.clear()
    res = _run(f, tmp_path / "d", dry_run=True)
    assert f.calls == [] and not (tmp_path / "d").exists()
    assert {r["action"] for r in res.values()} == {"would run"}


def test_progress_lines_name_the_stage_and_what_comes_next(tmp_path, capsys):
    _run(Fakes(), tmp_path / "o")
    err = capsys.readouterr().err
    assert "[2/6] train: running (not run yet)" in err and "next: evaluate" in err
    assert "[6/6] report: done in" in err
