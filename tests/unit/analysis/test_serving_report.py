"""Serving sweeps: kind detection, request rates, the sustained rate against hand-made numbers, the
tables and the figures, failed jobs, SLOs from the records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from report_records import SERVING_SLO, serving_metrics, write_job, write_serving_sweep

from analysis import records, report, serving
from analysis.serving_figures import INF_LABEL, RateAxis, is_geometric

CONTINUOUS = {"attention": "triton", "scheduler": "continuous", "chunked_prefill": False}
MIXED = {**CONTINUOUS, "scheduler": "mixed", "chunked_prefill": True}
RATES = [2.0, 4.0, 8.0, 16.0, 32.0]
FIGURES = ("ttft_p50_p99_vs_rate", "tpot_p50_p99_vs_rate", "itl_p50_p99_vs_rate", "goodput_vs_rate")


def shares(by_rate: dict[float, list[float]], p99: dict[float, float] | None = None):
    """Metrics whose SLO attainment at each rate is the given per-trial list (and TTFT p99 if given)."""

    def metrics_of(rate: float, trial: int) -> dict:
        made = serving_metrics(rate, 100.0, trial, attainment=by_rate[rate][trial])
        return made | ({"ttft_ms_p99": p99[rate]} if p99 else {})

    return metrics_of


def run(folder: Path, *args: str) -> tuple[int, str, Path]:
    out = folder.parent / (folder.name + "_report")
    code = report.main([str(folder), "--out", str(out), *args])
    return code, (out / "report.md").read_text(), out


def rows(markdown: str, section: str) -> list[dict[str, str]]:
    """The rows of the Markdown table under ``## section``, as {column: cell}."""
    lines = markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0].splitlines()
    table = [line for line in lines if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in table[2:]]


def sustained_rows(markdown: str) -> dict[str, dict[str, str]]:
    return {row["config"]: row for row in rows(markdown, "Sustained request rate")}


# --------------------------------------------------------------------------- rates and kind


def test_rates_are_read_from_records_inf_included_and_from_overrides_of_crashed_jobs(tmp_path: Path):
    folder = tmp_path / "s"
    config = {"workload": {"name": "serving", "request_rate": "inf"}, "slo": SERVING_SLO}
    write_job(folder, 0, CONTINUOUS, serving_metrics(8, 30), config=config, overrides="workload.request_rate=inf")
    (folder / "1").mkdir()
    (folder / "1" / "result.json").write_text(json.dumps({"schema": 1, "status": "ok", "switches": CONTINUOUS,
        "config": {"workload": {"request_rate": float("inf")}}, "job": {"num": 1}}))  # fmt: skip
    write_job(folder, 2, CONTINUOUS, serving_metrics(8, 30), config={"workload": {"request_rate": 8}})
    (folder / "3" / ".hydra").mkdir(parents=True)  # crashed before writing its record
    (folder / "3" / ".hydra" / "overrides.yaml").write_text("- workload.request_rate=16\n- trial=0\n")
    rates = serving.request_rates(records.load_records(folder))
    assert list(rates) == [math.inf, math.inf, 8.0, 16.0]
    assert [serving.parse_rate(v) for v in ("Infinity", " 2.5 ", 3, None)][:3] == [math.inf, 2.5, 3.0]
    assert math.isnan(serving.parse_rate(None)) and math.isnan(serving.parse_rate("fast"))


def test_declared_serving_kind_gets_the_serving_report(tmp_path: Path):
    folder = write_serving_sweep(tmp_path / "s", {"continuous": (CONTINUOUS, lambda r, t: serving_metrics(r, 20, t))},
                                 RATES, baseline="continuous")  # fmt: skip
    code, markdown, out = run(folder)
    assert code == 0 and markdown.startswith("# Serving report: serving_rate_sweep")
    assert "- experiment kind: serving\n" in markdown and "request rates swept (req/s): 2, 4, 8, 16, 32" in markdown
    workload = "- workload: `serving` (num_requests=200, arrival=poisson, burstiness=1; length mix: 75%: prompts"
    assert workload + " 64–512, outputs 128–512; 25%: prompts 2048–3072, outputs 128–512)" in markdown
    assert not list(out.glob("*_bars.png"))  # no per-configuration bars mixing rates


def test_undeclared_records_offered_several_rates_are_detected_as_serving(tmp_path: Path):
    configs = {
        "a": (CONTINUOUS, lambda r, t: serving_metrics(r, 20, t)),
        "b": (MIXED, lambda r, t: serving_metrics(r, 30, t)),
    }
    folder = write_serving_sweep(tmp_path / "s", configs, RATES, trials=1, kind=None, points=False)
    code, markdown, _ = run(folder)
    assert code == 0 and "serving (not declared; detected" in markdown
    assert set(sustained_rows(markdown)) == {
        "scheduler=continuous chunked_prefill=false",
        "scheduler=mixed chunked_prefill=true",
    }


def test_one_rate_without_a_declared_kind_is_not_a_serving_sweep(tmp_path: Path):
    folder = write_serving_sweep(tmp_path / "s", {"a": (CONTINUOUS, lambda r, t: serving_metrics(r, 20, t))}, [8.0],
                                 kind=None, points=False)  # fmt: skip
    code, markdown, _ = run(folder)
    assert code == 0 and markdown.startswith("# Benchmark report") and "not declared" in markdown


# --------------------------------------------------------------------------- sustained rate


def test_sustained_rate_is_the_highest_rate_met_there_and_at_every_lower_one(tmp_path: Path):
    """By hand: A meets 90% through 8 req/s (median of 0.95, 0.85, 0.92 is 0.92), misses at 16, and
    meeting it again at 32 does not count; B meets it everywhere; C misses at the lowest rate."""
    a = {2.0: [1, 1, 1], 4.0: [0.99, 0.97, 1], 8.0: [0.95, 0.85, 0.92], 16.0: [0.89, 0.7, 0.8], 32.0: [1, 1, 1]}
    b = dict.fromkeys(RATES, [1.0, 1.0, 1.0])
    c = dict.fromkeys(RATES, [0.5, 0.6, 0.4])
    configs = {"a": (CONTINUOUS, shares(a)), "b": (MIXED, shares(b)), "c": ({**MIXED, "attention": "sdpa"}, shares(c))}
    folder = write_serving_sweep(tmp_path / "s", configs, RATES, baseline="a")
    code, markdown, _ = run(folder)
    table = sustained_rows(markdown)
    assert code == 0
    assert (table["a"]["sustained req/s"], table["a"]["first missed"], table["a"]["vs baseline"]) == (
        "8",
        "16",
        "1.00x (baseline)",
    )
    assert (table["b"]["sustained req/s"], table["b"]["first missed"], table["b"]["vs baseline"]) == (
        "32",
        "none",
        "4.00x",
    )
    assert (table["c"]["sustained req/s"], table["c"]["first missed"], table["c"]["vs baseline"]) == ("< 2", "2", "n/a")
    assert "at least 90% of requests met every SLO" in markdown
    _, stricter, _ = run(folder, "--slo-share", "0.95")
    assert sustained_rows(stricter)["a"]["sustained req/s"] == "4" and "at least 95% of requests" in stricter


def test_the_recorded_slo_attainment_wins_over_goodput_by_throughput(tmp_path: Path):
    def metrics_of(rate: float, trial: int) -> dict:
        made = serving_metrics(rate, 100.0, trial, attainment=1.0)
        return made | ({"slo_attainment": 0.5} if rate == 8.0 else {})

    folder = write_serving_sweep(tmp_path / "s", {"a": (CONTINUOUS, metrics_of)}, RATES, baseline="a")
    markdown = run(folder)[1]
    assert sustained_rows(markdown)["a"]["sustained req/s"] == "4"
    assert [row["within SLO"] for row in rows(markdown, "Per request rate")] == ["100.0%", "100.0%", "50.0%"] + [
        "100.0%"
    ] * 2


def test_p99_definition_judges_every_set_slo_at_its_p99():
    points = pd.DataFrame({
        "config": ["x"] * 4, "request_rate": [1.0, 2.0, 4.0, 8.0], "ttft_ms_p99": [500.0, 1900.0, 2100.0, 100.0],
        "tpot_ms_p99": [10.0, 20.0, 30.0, 40.0], "e2e_ms_p99": [1e9] * 4,
    })  # fmt: skip
    met = serving.within_p99(points, SERVING_SLO)  # e2e_ms is not judged: its huge p99 does not matter
    assert list(met) == [True, True, False, True]
    assert serving.sustained(list(points["request_rate"]), list(met)) == (2.0, 4.0)
    assert serving.within_p99(points, {"ttft_ms": None, "tpot_ms": None}).isna().all()
    assert serving.sustained([1.0, 2.0], [True, True])[0] == 2.0 and math.isnan(serving.sustained([1.0], [True])[1])


def test_sustained_by_p99_in_the_report(tmp_path: Path):
    p99 = {2.0: 400.0, 4.0: 900.0, 8.0: 2500.0, 16.0: 9000.0, 32.0: 30000.0}
    folder = write_serving_sweep(tmp_path / "s", {"a": (CONTINUOUS, shares(dict.fromkeys(RATES, [1, 1, 1]), p99))},
                                 RATES, baseline="a")  # fmt: skip
    row = sustained_rows(run(folder)[1])["a"]
    assert (row["sustained req/s"], row["sustained, p99"]) == ("32", "4")


# --------------------------------------------------------------------------- tables, SLOs, failures


def test_per_rate_table_holds_medians_over_trials_and_failures(tmp_path: Path):
    def metrics_of(rate: float, trial: int) -> dict | None:
        if rate == 32.0 or (rate == 16.0 and trial == 2):
            return None
        return serving_metrics(rate, 20.0, trial) | {"ttft_ms_p99": 100.0 * rate + trial, "request_s": rate}

    folder = write_serving_sweep(tmp_path / "s", {"a": (CONTINUOUS, metrics_of)}, RATES, baseline="a")
    code, markdown, _ = run(folder)
    table = {row["rate"]: row for row in rows(markdown, "Per request rate")}
    assert code == 0 and list(table) == ["2", "4", "8", "16", "32"]
    assert table["8"]["TTFT p99 ms"] == "801.00" and table["8"]["req/s"] == "8.00" and table["8"]["status"] == "ok"
    assert table["16"]["trials"] == "2/3" and table["16"]["status"] == "1/3 failed"
    assert table["16"]["TTFT p99 ms"] == "1600"  # median of the two that ran: 1600 and 1601
    assert table["32"]["trials"] == "0/3" and table["32"]["TTFT p99 ms"] == "n/a"
    assert table["32"]["status"].startswith("failed: RuntimeError: out of memory")
    assert "records: 15 (4 failed)" in markdown


def test_every_job_failed_still_writes_the_report_and_exits_1(tmp_path: Path):
    folder = write_serving_sweep(tmp_path / "s", {"a": (CONTINUOUS, lambda r, t: None)}, RATES[:2], baseline="a")
    code, markdown, _ = run(folder)
    assert code == 1 and "0/3" in markdown


def test_slo_comes_from_the_config_else_the_metrics_and_must_agree(tmp_path: Path):
    folder = tmp_path / "s"
    for num, rate in enumerate(RATES[:3]):
        metrics = serving_metrics(rate, 20.0) | {"slo": {"ttft_ms": 1500.0, "tpot_ms": None, "e2e_ms": 9000.0}}
        config = {"workload": {"name": "serving", "request_rate": rate}, "experiment": {"kind": "serving"}}
        write_job(folder, num, CONTINUOUS, metrics, config=config)
    frame = records.load_records(folder)
    assert serving.slo_of(frame) == {"ttft_ms": 1500.0, "tpot_ms": None, "e2e_ms": 9000.0}
    assert "slo.ttft_ms" not in records.metric_columns(frame) and "workload.request_rate" not in records.metric_columns(
        frame
    )
    code, markdown, _ = run(folder)
    assert code == 0 and "SLO: TTFT ≤ 1500 ms, E2E latency ≤ 9000 ms; not judged: TPOT" in markdown
    other = {"workload": {"request_rate": 64.0}, "slo": {"ttft_ms": 500.0}, "experiment": {"kind": "serving"}}
    write_job(folder, 9, CONTINUOUS, serving_metrics(64, 20.0), config=other)
    with pytest.raises(SystemExit, match=r"different SLOs \(slo.ttft_ms: 500, 1500\)"):
        run(folder)


def test_without_any_slo_there_is_no_sustained_rate_and_no_goodput_figure(tmp_path: Path):
    def metrics_of(rate: float, trial: int) -> dict:
        return {k: v for k, v in serving_metrics(rate, 20.0, trial).items() if k != "goodput_req_s"}

    folder = write_serving_sweep(tmp_path / "s", {"a": (CONTINUOUS, metrics_of)}, RATES, slo=None, baseline="a")
    code, markdown, out = run(folder)
    row = sustained_rows(markdown)["a"]
    assert code == 0 and row["sustained req/s"] == "n/a (no SLO)" and row["sustained, p99"] == "n/a (no SLO)"
    assert "SLO: none judged" in markdown and "no goodput figure" in markdown
    assert not (out / "goodput_vs_rate.png").exists() and (out / "ttft_p50_p99_vs_rate.png").exists()


def test_options_that_do_not_apply_are_refused(tmp_path: Path):
    folder = write_serving_sweep(tmp_path / "s", {"a": (CONTINUOUS, lambda r, t: serving_metrics(r, 20, t))}, RATES[:2])
    for option, value in (("--columns", "wall_s"), ("--metric", "ttft_ms_p99")):
        with pytest.raises(SystemExit, match="--metric and --columns do not apply to a serving report"):
            run(folder, option, value)
    with pytest.raises(SystemExit):
        run(folder, "--slo-share", "0")


def test_latex_states_both_definitions_and_the_slo(tmp_path: Path):
    folder = write_serving_sweep(tmp_path / "s", {"a": (CONTINUOUS, lambda r, t: serving_metrics(r, 20, t))}, RATES)
    _, _, out = run(folder)
    tex = (out / "report.tex").read_text()
    assert tex.count(r"\begin{table}") == 2 and r"TTFT ≤ 2000 ms, TPOT ≤ 50 ms" in tex
    assert r"at least 90\% of requests met every SLO" in tex
    assert "median p99 of every judged latency within its SLO" in tex


# --------------------------------------------------------------------------- figures


@pytest.mark.parametrize("rates", [RATES + [math.inf], [4.0, 8.0, 16.0, 24.0, 32.0, 40.0, 48.0, 64.0]])
def test_figures_are_written_readable_and_seven_inches_wide(tmp_path: Path, rates: list[float]):
    names = ["continuous", "continuous_chunked", "mixed", "mixed_sync"]
    configs = {
        n: (CONTINUOUS | {"x": i}, lambda r, t, c=20 + 8 * i: serving_metrics(r, c, t)) for i, n in enumerate(names)
    }
    folder = write_serving_sweep(tmp_path / "s", configs, rates, baseline="continuous")
    code, markdown, out = run(folder)
    assert code == 0
    for stem in FIGURES:
        png = out / f"{stem}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
        width, height = Image.open(png).size
        assert 1000 <= width <= 1200 and 350 <= height <= 700, (stem, width, height)  # 7 in at 150 dpi
        assert f"![{stem}]({stem}.png)" in markdown


def test_rate_axis_puts_inf_one_step_past_the_last_rate_and_logs_geometric_sweeps():
    linear = RateAxis([4.0, 8.0, 12.0, 16.0, math.inf])
    assert not linear.log and linear.labels[-1] == INF_LABEL and linear.x([math.inf, 8.0]).tolist() == [20.0, 8.0]
    geometric = RateAxis([1.0, 2.0, 4.0, 8.0, 16.0, math.inf])
    assert geometric.log and geometric.x([math.inf])[0] == pytest.approx(32.0)
    assert is_geometric([1, 2, 4, 8]) and not is_geometric([4, 8, 16, 24, 32, 40, 48, 64]) and not is_geometric([1, 2])
