"""The report: one self-contained page whose numbers match its JSON, degrading gracefully."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from twin.report.build import build_report
from twin.report.numbers import fmt, iter_numbers

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.text, self.stack = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag in ("link", "script") and (a.get("href") or a.get("src")):
            self.links.append(a.get("href") or a.get("src"))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Collect:
    p = _Collect()
    p.feed(html)
    p.close()
    return p


_BUILT: dict[Path, tuple[str, dict]] = {}


def _build(root: Path):
    """Build once per folder (the page is deterministic given its inputs)."""
    if root not in _BUILT:
        paths = build_report(root, root / "report", n_boot=50)
        _BUILT[root] = (paths["html"].read_text(), json.loads(paths["json"].read_text()))
    return _BUILT[root]


def test_every_image_is_an_embedded_png_and_nothing_external_is_loaded(full_run):
    html, _ = _build(full_run)
    p = _parse(html)
    assert len(p.imgs) >= 5
    for src in p.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_MAGIC)
    assert p.links == []


def test_every_number_in_the_json_appears_in_the_page_text(full_run):
    html, data = _build(full_run)
    text = " ".join(_parse(html).text)
    missing = [(k, v) for k, v in iter_numbers(data) if fmt(v) not in text]
    assert missing == []


def test_key_numbers_on_the_page_are_in_the_json(full_run):
    html, data = _build(full_run)
    numbers = {fmt(v) for _, v in iter_numbers(data)}
    # every numeric table cell of the quality, slopes and recovery sections is in the JSON
    for anchor in ("quality", "slopes", "recovery", "invariance"):
        sec = re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S).group(1)
        cells = re.findall(r"<td>([-+0-9.e]+)</td>", sec)
        assert cells, anchor
        assert [c for c in cells if c not in numbers] == []


def test_slopes_stand_beside_the_published_values(full_run):
    _, data = _build(full_run)
    rows = {(r["measure"], r["projection"]): r for r in data["sections"]["slopes"]["slopes"]}
    assert rows[("signal_correlation", "V1->V1")]["published"] == 2.3
    assert rows[("signal_correlation", "HVA->HVA")]["published"] == 1.04
    assert rows[("signal_correlation", "V1->V1")]["estimate"] == 2.1
    assert rows[("signal_correlation", "V1->V1")]["published_within_ci"] is True
    assert rows[("rf_distance", "HVA->V1")]["published"] == 0.0
    assert rows[("signal_correlation", "HVA->HVA")]["planted"] == 1.25  # from truth/params.json
    assert rows[("rf_distance", "HVA->HVA")]["planted"] is None


def test_sweep_leaderboard_is_shown(full_run):
    _, data = _build(full_run)
    sw = data["sections"]["sweep"]
    assert sw["status"] == "ok" and sw["trials"][0]["metric"] == 0.312  # rounded to 3 significant digits
    assert sw["trials"][1]["error"] == "exit code 1"


def test_verdicts_follow_adjusted_p_and_sign(full_run):
    _, data = _build(full_run)
    v = {x["hypothesis"]: x for x in data["sections"]["verdicts"]["verdicts"]}
    assert v["in-silico signal correlation, V1->V1"]["verdict"] == "supported"
    assert v["in-silico signal correlation, V1->V1"]["p_adj"] == 0.0023
    assert v["RF centre distance, V1->V1"]["verdict"] == "consistent"  # no dependence, as published
    assert v["mei_similarity connected vs ADP"]["ci_low"] == 0.02


def test_recovery_scores_twin_tuning_against_planted(full_run):
    _, data = _build(full_run)
    r = data["sections"]["recovery"]
    assert r["n_matched"] == 12
    assert 0 < r["pref_ori_median_error_deg"] < 15  # the fixture adds 5 deg noise
    assert r["simple_complex_auc"] > 0.9
    assert r["rf_center_median_error_deg"] == pytest.approx(1.41, abs=0.01)


def test_density_bands_enclose_the_binned_density(full_run):
    _, data = _build(full_run)
    for proj, p in data["sections"]["density"]["measures"]["signal_correlation"].items():
        for d, lo, hi in zip(p["density"], p["lo"], p["hi"]):
            assert lo <= d * 1.01 and d <= hi * 1.01, proj


@pytest.mark.parametrize("stages", [(), ("simulate",), ("simulate", "train", "evaluate"),
                                    ("train", "insilico", "analyze")])
def test_missing_stage_outputs_are_named_on_the_page(tmp_path, stages, run_factory):
    root = run_factory(tmp_path / "run", stages)
    html, data = _build(root)
    _parse(html)
    for anchor, sec in data["sections"].items():
        if sec.get("status") == "missing":
            assert sec["note"] in " ".join(_parse(html).text)
    if "analyze" not in stages:
        assert data["sections"]["slopes"]["status"] == "missing"
    if "simulate" not in stages:
        assert data["sections"]["recovery"]["status"] == "missing"


def test_report_cli_writes_both_files_and_rejects_a_missing_folder(full_run, tmp_path, capsys):
    from twin.cli import main

    assert main(["report", str(full_run), "--out", str(tmp_path / "r"), "--bootstrap", "20"]) == 0
    assert (tmp_path / "r" / "report.html").is_file() and (tmp_path / "r" / "report.json").is_file()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RUN_OUT" in err[0]
    assert main(["report", str(full_run), "--out", str(tmp_path / "r")]) == 2  # never overwrites silently
    assert "--force" in capsys.readouterr().err
    assert main(["report", str(full_run), "--out", str(tmp_path / "r"), "--force", "--bootstrap", "20"]) == 0


def test_verdicts_skip_excluded_and_area_layer_tests_and_word_invariance_claims(tmp_path, run_factory):
    from twin.report.sections_connectivity import invariance, verdicts
    from twin.report.sources import Sources

    root = run_factory(tmp_path / "run", ("analyze",))
    res = json.loads((root / "analyze" / "results.json").read_text())
    res["tests"] += [
        {"name": "synaptic_scale/signal_correlation/V1 L4->V1 L5", "family": "synaptic_scale", "level": "area_layer",
         "measure": "signal_correlation", "projection": "V1 L4->V1 L5", "estimate": 9.0, "p": 1e-9, "p_adj": 1e-9},
        {"name": "synaptic_scale/feature_cosine/HVA->V1", "family": "synaptic_scale", "measure": "feature_cosine",
         "projection": "HVA->V1", "estimate": None, "p": None, "included": False, "reason": "3 presynaptic neurons"},
        {"name": "invariance/phase_invariance/post_minus_pre/V1->V1", "family": "invariance",
         "measure": "phase_invariance", "estimate": -0.2, "ci_low": -0.3, "ci_high": -0.1, "p": 1e-4, "p_adj": 1e-3},
        {"name": "invariance/phase_invariance/out_degree_poisson/all", "family": "invariance",
         "measure": "pre_phase_invariance", "estimate": -0.5, "ci_low": -0.8, "ci_high": -0.2, "p": 1e-4,
         "p_adj": 1e-3}]
    (root / "analyze" / "results.json").write_text(json.dumps(res))
    src = Sources(analyze=root / "analyze")
    v = {x["hypothesis"]: x for x in verdicts(src).data["verdicts"]}
    assert not any("V1 L4->V1 L5" in h for h in v) and not any("HVA->V1" in h and "eature" in h for h in v)
    post = next(x for h, x in v.items() if "post_minus_pre" in h)
    assert post["verdict"] == "not supported" and "opposite" in post["explanation"]
    deg = next(x for h, x in v.items() if "out_degree" in h)
    assert deg["verdict"] == "supported" and "less invariant" in deg["explanation"]
    assert "3 presynaptic neurons" not in invariance(src).html


def test_verdicts_read_a_negative_orientation_difference_slope_as_like_to_like(tmp_path, run_factory):
    from twin.report.sections_connectivity import verdicts
    from twin.report.sources import Sources

    root = run_factory(tmp_path / "run", ("analyze",))
    res = json.loads((root / "analyze" / "results.json").read_text())
    res["tests"] += [
        {"name": "synaptic_scale/ori_difference/all", "family": "synaptic_scale", "level": "pooled",
         "measure": "ori_difference", "projection": "all", "estimate": -0.004, "ci_low": -0.006,
         "ci_high": -0.002, "p": 1e-4, "p_adj": 1e-3},
        {"name": "synaptic_scale/signal_correlation/all", "family": "synaptic_scale", "level": "pooled",
         "measure": "signal_correlation", "projection": "all", "estimate": -0.5, "ci_low": -0.8,
         "ci_high": -0.2, "p": 1e-4, "p_adj": 1e-3}]
    for how in ("poisson", "spearman"):
        res["tests"].append({"name": f"invariance/phase_invariance/out_degree_{how}/all", "family": "invariance",
                             "measure": "pre_phase_invariance", "projection": "all", "estimate": -0.5,
                             "ci_low": -0.8, "ci_high": -0.2, "p": 1e-4, "p_adj": 1e-3})
    (root / "analyze" / "results.json").write_text(json.dumps(res))
    v = {x["hypothesis"]: x for x in verdicts(Sources(analyze=root / "analyze")).data["verdicts"]}
    assert v["preferred-orientation difference, all projections (one common slope)"]["verdict"] == "supported"
    assert v["in-silico signal correlation, all projections (one common slope)"]["verdict"] == "not supported"
    # the Poisson and Spearman out-degree tests are told apart
    assert v["presynaptic phase invariance (outgoing connections, Poisson), all"]["verdict"] == "supported"
    assert v["presynaptic phase invariance (outgoing connections, Spearman), all"]["verdict"] == "supported"
