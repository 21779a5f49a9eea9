"""An approximate configuration's probe figures stand beside its speedup; exact-only sweeps show none."""

from __future__ import annotations

from pathlib import Path

from report_records import SMOKE_SWITCHES, approximate_correctness, write_job

from analysis import records, report

EXACT = {**SMOKE_SWITCHES, "kv_cache_dtype": "auto"}
FP8 = {**SMOKE_SWITCHES, "kv_cache_dtype": "fp8"}
PASSED = {"verdict": "pass", "passed": True, "first_divergence": [None] * 4, "reasons": [], "approximate": []}
TITLES = ("top-1 agree", "top-5 contained", "mean abs Δlogprob")


def sweep(folder: Path, fp8_trials: list[dict] | None) -> Path:
    num = 0
    for trial, value in enumerate([10.0, 10.1, 9.9]):
        write_job(folder, num, EXACT, {"output_tok_s": value}, trial=trial, correctness=PASSED)
        num += 1
    for trial, check in enumerate(fp8_trials or []):
        write_job(folder, num, FP8, {"output_tok_s": 15.0 + trial / 10}, trial=trial, correctness=check)
        num += 1
    return folder


def markdown_table(folder: Path) -> tuple[list[str], dict[str, list[str]]]:
    out = folder.parent / "out"
    assert report.main([str(folder), "--baseline", "kv_cache_dtype=auto", "--out", str(out)]) == 0
    lines = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return split[0], {row[0]: row for row in split[2:]}


def test_approximate_figures_stand_beside_the_speedup_worst_trial_first(tmp_path: Path):
    trials = [approximate_correctness(0.97, 1.0, 0.05), approximate_correctness(0.94, 0.98, 0.07),
              approximate_correctness(0.98, 1.0, 0.04)]  # fmt: skip
    header, rows = markdown_table(sweep(tmp_path / "s", trials))
    assert header.index("speedup") < header.index("top-1 agree")
    cells = dict(zip(header, rows["fp8"]))
    assert (cells["top-1 agree"], cells["top-5 contained"], cells["mean abs Δlogprob"]) == ("94.0%", "98.0%", "0.070")
    assert "1.51x" in cells["speedup"]
    exact = dict(zip(header, rows["auto"]))
    assert all(exact[title] == "n/a" for title in TITLES)
    tex = (tmp_path / "out" / "report.tex").read_text()
    assert r"mean abs $\Delta$logprob" in tex and "94.0\\%" in tex


def test_a_failed_approximate_probe_shows_fail_and_its_figures(tmp_path: Path):
    header, rows = markdown_table(sweep(tmp_path / "s", [approximate_correctness(0.5, 0.6, 0.9, passed=False)]))
    cells = dict(zip(header, rows["fp8"]))
    assert cells["correct"] == "FAIL" and cells["top-1 agree"] == "50.0%"


def test_exact_only_sweeps_drop_the_accuracy_columns(tmp_path: Path):
    header, _ = markdown_table(sweep(tmp_path / "s", None))
    assert not set(TITLES) & set(header)


def test_probe_figures_are_columns_but_not_metrics(tmp_path: Path):
    frame = records.load_records(sweep(tmp_path / "s", [approximate_correctness(0.97, 1.0, 0.05)]))
    assert list(frame["probe.top1_agreement"].dropna()) == [0.97]
    assert not any(c.startswith("probe.") for c in records.metric_columns(frame))
