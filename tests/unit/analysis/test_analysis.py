"""Tests of the analysis package on hand-made result.json records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from repo_paths import ROOT

from analysis import baseline, figures, labels, records, report, stats, summary, tables

REPO_ROOT = Path(ROOT)
BASE_SWITCHES = {"attention": "sdpa", "cuda_graphs": False, "prefix_caching": True, "block_size": 256}


def write_record(folder: Path, num: int, switches: dict, trial: int = 0, **fields) -> Path:
    """A schema-1 record in ``folder/<num>/result.json``; ``fields`` override or extend the defaults."""
    record = {
        "schema": 1,
        "status": "ok",
        "error": None,
        "switches": switches,
        "model": "qwen3-0.6b",
        "workload": "nano_bench",
        "trial": trial,
        "device_name": "NVIDIA H100 80GB HBM3",
        "dtype": "bfloat16",
        "weights": "random",
        "job": {"num": num, "override_dirname": f"trial={trial}", "dir": str(folder / str(num))},
        "metrics": {},
        "counters": {"steps": 3},
        "correctness": None,
        "trace_file": None,
    }
    record.update(fields)
    path = folder / str(num) / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    return path


def write_sweep(folder: Path, configs: list[tuple[dict, list[float]]], **fields) -> Path:
    """One job per (switches, trial value), numbered in order; returns the folder."""
    num = 0
    for switches, values in configs:
        for trial, value in enumerate(values):
            metrics = {"output_tok_s": value, "roofline": value / 100.0}
            write_record(folder, num, switches, trial=trial, metrics=metrics, **fields)
            num += 1
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    optimized = {**BASE_SWITCHES, "cuda_graphs": True}
    return write_sweep(tmp_path / "sweep", [(BASE_SWITCHES, [5, 6, 4]), (optimized, [10, 12, 11])])


def summarize(folder: Path, base: str | None = None, metric: str = "output_tok_s") -> pd.DataFrame:
    frame = records.add_config_labels(records.load_records(folder))
    return summary.build_summary_table(frame, metric, baseline_of(frame, base))


def baseline_of(frame: pd.DataFrame, spec: str | None = None) -> str:
    return baseline.choose_baseline(frame, spec)


def row_of(table: pd.DataFrame, config: str) -> pd.Series:
    return table.set_index("config").loc[config]


# --------------------------------------------------------------------------- stats


def test_stats_are_medians_spreads_and_ratio_of_medians():
    assert stats.median([10, 12, 11, None, float("nan")]) == 11
    assert stats.spread([10, 12, 11]) == (10, 12)
    assert stats.speedup([10, 12, 11], [5, 6, 4]) == pytest.approx(2.2)
    assert stats.speedup([1, 100, 3], [1, 1, 1]) == 3  # median ratio, not a mean of ratios
    assert pd.isna(stats.speedup([1, 2], []))


def test_speedup_of_a_time_is_the_inverse_ratio():
    assert stats.lower_is_better("decode_s") and stats.lower_is_better("tpot_ms_median")
    assert not stats.lower_is_better("output_tok_s")
    for rate in ("request_s", "goodput_req_s", "decode_bandwidth_gb_s", "peak_output_tok_s"):
        assert not stats.lower_is_better(rate), rate
    for spent in ("energy_j", "energy_j_per_output_token", "gpu_power_w_mean", "itl_ms_p99", "e2e_ms_std"):
        assert stats.lower_is_better(spent), spent
    assert stats.speedup([2.0, 2.5, 3.0], [5.0, 5.0, 5.0], lower_better=True) == 2.0  # half the time: 2x
    assert pd.isna(stats.median([]))


def test_bootstrap_interval_is_seeded_and_brackets_the_median():
    values = [10, 12, 11, 13, 9]
    low, high = stats.bootstrap_median_ci(values, seed=1)
    assert (low, high) == stats.bootstrap_median_ci(values, seed=1)
    assert low <= stats.median(values) <= high


# --------------------------------------------------------------------------- records


def test_load_records_columns_and_job_order(sweep: Path):
    frame = records.load_records(sweep)
    assert len(frame) == 6
    assert list(frame["job_num"]) == [0, 1, 2, 3, 4, 5]
    for column in ("switch.attention", "switch.cuda_graphs", "output_tok_s", "counter.steps", "correct"):
        assert column in frame
    assert records.config_columns(frame) == ["switch.cuda_graphs"]
    labelled = records.add_config_labels(frame)
    assert records.config_order(labelled) == ["cuda_graphs=false", "cuda_graphs=true"]
    renamed = records.add_config_labels(frame, names={"cuda_graphs=false": "baseline"})
    assert renamed["config"].iloc[0] == "baseline"


def test_no_result_json_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no result.json found under"):
        records.load_records(tmp_path)


def test_new_switch_becomes_a_column_without_code_changes(tmp_path: Path):
    write_record(tmp_path, 0, BASE_SWITCHES, metrics={"output_tok_s": 5.0})
    write_record(tmp_path, 1, {**BASE_SWITCHES, "spec_decode": "ngram"}, metrics={"output_tok_s": 7.0})
    frame = records.add_config_labels(records.load_records(tmp_path))
    assert "switch.spec_decode" in frame
    assert list(frame["config"]) == ["spec_decode=null", "spec_decode=ngram"]
    table = summary.build_summary_table(frame, "output_tok_s", "spec_decode=null")
    shown = tables.format_summary_table(table, "output_tok_s", frame).table
    assert list(shown["spec_decode"]) == ["null", "ngram"]
    assert row_of(table, "spec_decode=ngram")["speedup"] == pytest.approx(1.4)


def test_plugin_options_keep_configurations_apart(tmp_path: Path):
    triton = {**BASE_SWITCHES, "attention": "triton"}
    write_record(tmp_path, 0, {**triton, "attention.longest_first": True}, metrics={"output_tok_s": 10.0})
    write_record(tmp_path, 1, {**triton, "attention.longest_first": False}, metrics={"output_tok_s": 8.0})
    write_record(tmp_path, 2, BASE_SWITCHES, metrics={"output_tok_s": 2.0})  # sdpa: no such option
    frame = records.add_config_labels(records.load_records(tmp_path))
    table = summary.build_summary_table(frame, "output_tok_s", "attention=triton attention.longest_first=true")
    assert len(table) == 3
    assert row_of(table, "attention=triton attention.longest_first=false")["speedup"] == pytest.approx(0.8)
    baseline = baseline_of(frame, "attention=triton,attention.longest_first=true")
    assert baseline == "attention=triton attention.longest_first=true"


def test_job_without_result_json_is_a_failed_row(sweep: Path):
    hydra = sweep / "9" / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "overrides.yaml").write_text("- cuda_graphs=true\n- trial=2\n- seed=3\n")
    frame = records.load_records(sweep)
    orphan = frame[frame["job_num"] == 9].iloc[0]
    assert orphan["status"] == "failed" and "MissingResult" in orphan["error"]
    assert records.format_value(orphan["switch.cuda_graphs"]) == "true" and orphan["trial"] == 2
    assert "switch.seed" not in frame  # only known switch names are taken from overrides


# --------------------------------------------------------------------------- baseline


def test_default_baseline_has_fewest_true_switches(tmp_path: Path):
    optimized = {**BASE_SWITCHES, "cuda_graphs": True}
    bare = {**BASE_SWITCHES, "prefix_caching": False}
    write_sweep(tmp_path, [(optimized, [10]), (BASE_SWITCHES, [6]), (bare, [5])])
    frame = records.add_config_labels(records.load_records(tmp_path))
    assert baseline_of(frame) == "cuda_graphs=false prefix_caching=false"


def test_baseline_override_and_unknown_switch(sweep: Path):
    frame = records.add_config_labels(records.load_records(sweep))
    assert baseline_of(frame, "attention=sdpa,cuda_graphs=true") == "cuda_graphs=true"
    assert baseline_of(frame, "switch.cuda_graphs=False") == "cuda_graphs=false"
    with pytest.raises(ValueError, match="unknown switch 'warp'"):
        baseline_of(frame, "warp=9")
    with pytest.raises(ValueError, match="no configuration matches"):
        baseline_of(frame, "attention=flash")


def test_parse_overrides():
    parsed = records.parse_overrides("attention=sdpa,+engine.block_size=16,cuda_graphs=false,x=null,r=0.5")
    assert parsed == {"attention": "sdpa", "engine.block_size": 16, "cuda_graphs": False, "x": None, "r": 0.5}
    switches = ["attention", "attention.longest_first", "block_size"]
    assert records.switch_key("engine.block_size", switches) == "block_size"
    assert records.switch_key("attention.longest_first", switches) == "attention.longest_first"
    assert records.switch_key("switch_x", switches) is None


# --------------------------------------------------------------------------- tables


def test_summary_medians_spread_and_speedup(sweep: Path):
    table = summarize(sweep)
    base, fast = row_of(table, "cuda_graphs=false"), row_of(table, "cuda_graphs=true")
    assert (base["median"], base["min"], base["max"], base["trials"]) == (5, 4, 6, 3)
    assert (fast["median"], fast["min"], fast["max"]) == (11, 10, 12)
    assert fast["speedup"] == pytest.approx(2.2) and base["speedup"] == 1
    assert fast["roofline_pct"] == pytest.approx(11.0)
    assert bool(base["is_baseline"]) and fast["status"] == "ok"


def test_failed_jobs_stay_rows(sweep: Path):
    broken = {**BASE_SWITCHES, "attention": "flash"}
    write_record(sweep, 6, broken, status="failed", error="RuntimeError: CUDA OOM", metrics=None)
    write_record(sweep, 7, {**BASE_SWITCHES, "cuda_graphs": True}, trial=3, status="failed", error="X: y")
    table = summarize(sweep, "attention=sdpa,cuda_graphs=false")
    failed = row_of(table, "attention=flash cuda_graphs=false")
    assert failed["status"] == "failed: RuntimeError: CUDA OOM" and pd.isna(failed["median"])
    assert row_of(table, "attention=sdpa cuda_graphs=true")["status"] == "1/4 failed"
    shown = tables.format_summary_table(table, "output_tok_s").table
    assert "n/a" in set(shown["speedup"]) and len(shown) == 3


def test_correctness_verdict(tmp_path: Path):
    passed = {"passed": True, "first_divergence": [None], "reference": "ref.json"}
    failed = {"passed": False, "first_divergence": [3], "reference": "ref.json"}
    for num, (switches, check) in enumerate(
        [({"a": 1}, passed), ({"a": 1}, passed), ({"a": 2}, passed), ({"a": 2}, failed), ({"a": 3}, None)]
    ):
        write_record(tmp_path, num, switches, metrics={"output_tok_s": 1.0}, correctness=check)
    table = summarize(tmp_path, "a=1")
    assert list(table["correct"]) == ["pass", "FAIL", "n/a"]


def test_reference_verdict_and_interrupted_trials(tmp_path: Path):
    """A probe that ran the reference's own configuration compared nothing: shown as `reference`, never
    `pass`; interrupted trials are counted apart from failed ones."""
    reference = {"passed": None, "verdict": "reference", "reference": "ref.json"}
    passed = {"passed": True, "verdict": "pass", "reference": "ref.json"}
    write_record(tmp_path, 0, {"a": 1}, metrics={"output_tok_s": 1.0}, correctness=reference)
    write_record(tmp_path, 1, {"a": 2}, metrics={"output_tok_s": 1.0}, correctness=passed)
    write_record(tmp_path, 2, {"a": 2}, trial=1, status="interrupted", error="interrupted by SIGINT", metrics=None)
    write_record(tmp_path, 3, {"a": 2}, trial=2, status="failed", error="X: y", metrics=None)
    table = summarize(tmp_path, "a=1")
    assert list(table["correct"]) == ["reference", "pass"]
    assert row_of(table, "a=2")["status"] == "1/3 interrupted, 1/3 failed"


def test_markdown_fallback_pipe_table():
    shown = pd.DataFrame({"config": ["a=1"], "status": ["failed: E: x|y"]})
    text = tables.pipe_table(shown.map(tables.escape_markdown))
    assert text.splitlines()[0] == "| config | status |"
    assert "x\\|y" in text


# --------------------------------------------------------------------------- report and figures


def assert_figures(paths: list[Path]) -> None:
    assert {p.suffix for p in paths} == {".png", ".pdf"}
    for path in paths:
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if path.suffix == ".png" else b"%PDF")


def test_report_writes_markdown_latex_and_figures(sweep: Path, tmp_path: Path, capsys):
    write_record(sweep, 6, {**BASE_SWITCHES, "attention": "flash"}, status="failed", error="E: boom")
    out = tmp_path / "out"
    assert report.main([str(sweep), "--out", str(out)]) == 0
    markdown, latex = (out / "report.md").read_text(), (out / "report.tex").read_text()
    for text in (markdown, latex):
        assert "11.00" in text and "2.20x" in text and "E: boom" in text
    assert "10.00–12.00" in markdown and "10.00--12.00" in latex and "\\toprule" in latex
    assert "cuda_graphs" in markdown and "cuda\\_graphs" in latex
    assert "11.00" in capsys.readouterr().out
    assert_figures(sorted(out.glob("output_tok_s_bars.*")))


def test_staircase_for_cumulative_ablation(tmp_path: Path):
    steps = [BASE_SWITCHES, {**BASE_SWITCHES, "cuda_graphs": True}]
    steps.append({**steps[1], "attention": "flash"})
    write_sweep(tmp_path / "s", [(steps[0], [5, 6]), (steps[1], [8, 9]), (steps[2], [12, 13])])
    frame = records.add_config_labels(records.load_records(tmp_path / "s"))
    order = records.config_order(frame)
    assert labels.is_cumulative(frame, order)
    steps = labels.step_labels(frame, order)
    assert steps[1:] == ["+cuda_graphs=true", "+attention=flash"]
    table = summary.build_summary_table(frame, "output_tok_s", order[0])
    assert_figures(figures.plot_ablation_staircase(table, "output_tok_s", tmp_path / "f", order, steps))
    assert not labels.is_cumulative(frame, [order[2], order[0], order[1]])


def test_timeline_from_trace_csv(tmp_path: Path):
    trace = tmp_path / "trace.csv"
    rows = ["step,kind,batch_size,num_tokens,step_ms,kv_blocks_used", "0,prefill,4,512,20.5,8"]
    rows += [f"{i},decode,4,4,{5 + i / 10},{8 + i}" for i in range(1, 20)]
    trace.write_text("\n".join(rows) + "\n")
    assert_figures(figures.plot_step_timeline(trace, tmp_path / "f"))
    trace.write_text("step,kind\n0,decode\n")
    with pytest.raises(ValueError, match="missing trace columns"):
        figures.read_trace(trace)


def test_report_draws_timeline_when_trace_present(tmp_path: Path):
    path = write_record(tmp_path / "s", 0, BASE_SWITCHES, metrics={"output_tok_s": 3.0}, trace_file="trace.csv")
    (path.parent / "trace.csv").write_text("step,kind,batch_size,num_tokens,step_ms,kv_blocks_used\n0,decode,1,1,2,1\n")
    assert report.main([str(tmp_path / "s"), "--out", str(tmp_path / "out")]) == 0
    assert_figures(sorted((tmp_path / "out").glob("timeline_*")))


def test_report_reads_a_gzipped_trace_as_archived_results_keep_it(tmp_path: Path):
    import gzip

    path = write_record(tmp_path / "s", 0, BASE_SWITCHES, metrics={"output_tok_s": 3.0}, trace_file="trace.csv")
    text = "step,kind,batch_size,num_tokens,step_ms,kv_blocks_used\n0,decode,1,1,2,1\n1,decode,1,1,3,1\n"
    (path.parent / "trace.csv.gz").write_bytes(gzip.compress(text.encode()))
    assert report.main([str(tmp_path / "s"), "--out", str(tmp_path / "out")]) == 0
    assert_figures(sorted((tmp_path / "out").glob("timeline_*")))


@pytest.mark.parametrize("entry", [["analysis/report.py"], ["-m", "analysis.report"]])
def test_cli_runs_as_script_and_module(sweep: Path, tmp_path: Path, entry: list[str]):
    command = [
        sys.executable,
        *entry,
        str(sweep),
        "--out",
        str(tmp_path / "o"),
        "--baseline",
        "cuda_graphs=false",
    ]
    done = subprocess.run(command, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "2.20x" in done.stdout and (tmp_path / "o" / "report.tex").is_file()


def test_cli_unknown_metric_is_a_clear_error(sweep: Path):
    with pytest.raises(SystemExit, match="metric 'nope' not found.*output_tok_s"):
        report.main([str(sweep), "--metric", "nope"])
