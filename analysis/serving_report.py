"""The report of a serving sweep (experiment kind ``serving``): ``report.md``, ``report.tex`` and the
figures of :mod:`analysis.serving_figures`, from the numbers of :mod:`analysis.serving`.

Two tables: per configuration, the highest request rate it sustains within the SLOs (by both
definitions of :mod:`analysis.serving`, each stated in the caption) and its ratio to the baseline's;
then per configuration and rate, the medians over trials of throughput, goodput and latency percentiles.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from analysis import labels, serving, serving_figures
from analysis.baseline import Baselines
from analysis.records import WORKLOAD_PREFIX, format_value
from analysis.report_text import baseline_line, figure_lines
from analysis.tables import NA, Display, format_number, to_latex, to_markdown, write_text

SLO_NAMES = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "e2e_ms": "E2E latency"}
POINT_COLUMNS = {  # metric: column title, in the per-rate table
    "request_s": "req/s",
    "goodput_req_s": "goodput req/s",
    serving.ATTAINMENT: "within SLO",
    "ttft_ms_p50": "TTFT p50 ms",
    "ttft_ms_p99": "TTFT p99 ms",
    "tpot_ms_p50": "TPOT p50 ms",
    "tpot_ms_p99": "TPOT p99 ms",
    "itl_ms_p99": "ITL p99 ms",
    "e2e_ms_p99": "E2E p99 ms",
}
SKIPPED_WORKLOAD_KEYS = ("kind", "request_rate", "seed", "token_id_max", "warmup_requests", "prefix_len",
                         "prefix_share")  # fmt: skip


def format_rate(rate: float) -> str:
    if pd.isna(rate):
        return NA
    return "inf" if math.isinf(rate) else f"{rate:g}"


def slo_text(slo: Mapping[str, float | None]) -> str:
    """``TTFT ≤ 2000 ms, TPOT ≤ 50 ms; not judged: E2E latency``."""
    judged = [f"{SLO_NAMES[k]} ≤ {v:g} ms" for k, v in slo.items() if v is not None]
    skipped = [SLO_NAMES[k] for k, v in slo.items() if v is None]
    text = ", ".join(judged) or "none judged (no goodput, no sustained rate)"
    return text + (f"; not judged: {', '.join(skipped)}" if judged and skipped else "")


def definitions(share: float) -> tuple[str, str]:
    within = (
        f"sustained: the highest rate swept at which, and at every lower rate, at least {100 * share:g}% of "
        "requests met every SLO (goodput_req_s / request_s, median over trials; a rate without a successful "
        "trial counts as missed)"
    )
    p99 = "sustained, p99: the same, with the median p99 of every judged latency within its SLO instead"
    return within, p99


def workload_text(frame: pd.DataFrame) -> str:
    """The workload settings shared by every record (``arrival=poisson, num_requests=200, ...``); a length
    mix as its classes (``75%: prompts 64–512, outputs 128–512``)."""
    workload = str(frame["workload"].dropna().iloc[0]) if frame["workload"].notna().any() else "unknown"
    columns = [c for c in frame if c.startswith(WORKLOAD_PREFIX)]
    shown = [c for c in columns if c.removeprefix(WORKLOAD_PREFIX) not in SKIPPED_WORKLOAD_KEYS]
    constant = [c for c in shown if frame[c].notna().any() and frame[c].dropna().map(format_value).nunique() == 1]
    values = [(c.removeprefix(WORKLOAD_PREFIX), frame[c].dropna().iloc[0]) for c in constant]
    mix = dict(values).get("length_mix")
    text = ", ".join(f"{k}={format_value(v)}" for k, v in values if k != "length_mix" and not is_length_key(k, mix))
    if isinstance(mix, str):
        text += f"; length mix: {mix_text(mix)}"
    return f"`{workload}`" + (f" ({text})" if text else "")


def is_length_key(key: str, mix: object) -> bool:
    """The workload's own length ranges, unused when a length mix is set."""
    return isinstance(mix, str) and key.startswith(("input_len_", "output_len_"))


def mix_text(mix: str) -> str:
    """``75%: prompts 64–512, outputs 128–512; 25%: prompts 2048–3072, outputs 128–512``."""
    try:
        classes = json.loads(mix)
        return "; ".join(f"{100 * c['share']:g}%: prompts {c['input_len_min']}–{c['input_len_max']}, "
                         f"outputs {c['output_len_min']}–{c['output_len_max']}" for c in classes)  # fmt: skip
    except (ValueError, TypeError, KeyError):
        return mix


def header_lines(
    title: str, frame: pd.DataFrame, points: pd.DataFrame, slo: Mapping, share: float, declared: bool,
    baselines: Baselines,
) -> list[str]:  # fmt: skip
    failed = int((frame["status"] != "ok").sum())
    within, p99 = definitions(share)
    rates = ", ".join(format_rate(r) for r in sorted(set(points["request_rate"].dropna())))
    kind = "serving" if declared else "serving (not declared; detected: the records were offered several rates)"
    return [
        f"# Serving report: {title}",
        "",
        f"- experiment kind: {kind}",
        f"- records: {len(frame)} ({failed} failed)",
        f"- request rates swept (req/s): {rates or NA}",
        f"- successful trials per configuration and rate: {trials_range(points['ok_trials'])}",
        f"- workload: {workload_text(frame)}",
        f"- SLO: {slo_text(slo)}",
        f"- {within}",
        f"- {p99}",
        "- figures and the per-rate table: median over successful trials; bands: lowest to highest trial",
        f"- {baseline_line(baselines)}",
        f"- constant: {labels.constant_caption(frame) or NA}",
    ]


def trials_range(counts: pd.Series) -> str:
    if counts.empty:
        return "0"
    low, high = int(counts.min()), int(counts.max())
    return str(high) if low == high else f"{low}–{high}"


def format_sustained(value: float, missed: float, judged: bool) -> str:
    if not judged:
        return "n/a (no SLO)"
    if pd.isna(value):
        return f"< {format_rate(missed)}" if not pd.isna(missed) else NA
    return format_rate(value)


def sustained_display(table: pd.DataFrame, frame: pd.DataFrame, points: pd.DataFrame, judged: bool) -> Display:
    """The per-configuration table as text."""
    shown = pd.DataFrame({"config": table["config"]})
    if labels.has_points(frame):
        shown["changes"] = [labels.changes(frame, c, b) for c, b in zip(table["config"], table["baseline"])]
    shown["sustained req/s"] = [format_sustained(v, m, judged) for v, m in zip(table["sustained"], table["missed"])]
    shown["first missed"] = [format_rate(m) if judged and not pd.isna(m) else "none" for m in table["missed"]]
    shown["vs baseline"] = [ratio_text(r, c, b) for r, c, b in zip(table["vs_baseline"], table["config"],
                                                                      table["baseline"])]  # fmt: skip
    shown["sustained, p99"] = [format_sustained(v, m, judged)
                               for v, m in zip(table["sustained_p99"], table["missed_p99"])]  # fmt: skip
    shown["peak goodput req/s"] = [f"{format_number(g)} at {format_rate(r)}" if not pd.isna(g) else NA
                                   for g, r in zip(table["peak_goodput"], table["peak_goodput_rate"])]  # fmt: skip
    # every job of the configuration, all rates together (the per-rate table gives trials per rate)
    shown["jobs"] = [f"{ok}/{n}" if ok != n else str(n) for ok, n in zip(table["ok_trials"], table["trials"])]
    if "changes" in shown and (shown["changes"] == "").all():
        shown = shown.drop(columns="changes")
    numeric = ["sustained req/s", "first missed", "vs baseline", "sustained, p99", "peak goodput req/s", "jobs"]
    return Display(shown.reset_index(drop=True), [], numeric)


def ratio_text(value: float, config: str, baseline: str | None) -> str:
    if config == baseline:
        return "1.00x (baseline)"
    return NA if pd.isna(value) else f"{value:.2f}x"


def format_point(metric: str, value: float) -> str:
    if pd.isna(value):
        return NA
    return f"{100 * value:.1f}%" if metric == serving.ATTAINMENT else format_number(value)


def points_display(points: pd.DataFrame) -> Display:
    """The per-configuration, per-rate table as text; a status column only where some trial failed."""
    shown = pd.DataFrame({"config": points["config"], "rate": points["request_rate"].map(format_rate)})
    shown["trials"] = [f"{ok}/{n}" if ok != n else str(n) for ok, n in zip(points["ok_trials"], points["trials"])]
    for metric, title in POINT_COLUMNS.items():
        if metric in points and points[metric].notna().any():
            shown[title] = [format_point(metric, v) for v in points[metric]]
    if (points["status"] != "ok").any():
        shown["status"] = points["status"]
    numeric = [c for c in shown if c not in ("config", "status")]
    return Display(shown.reset_index(drop=True), [], numeric)


def latex_captions(slo: Mapping, share: float, frame: pd.DataFrame) -> tuple[str, str]:
    within, p99 = definitions(share)
    constant = labels.constant_caption(frame) or NA
    first = (
        f"Highest request rate each configuration sustains. SLO: {slo_text(slo)}. {within[0].upper()}{within[1:]}; "
        f"{p99}. The true capacity lies between the sustained rate and the first rate missed. Constant: {constant}."
    )
    second = (
        "Throughput, goodput and latency per configuration and offered request rate (req/s): medians over "
        f"successful trials. Within SLO: share of requests meeting every SLO ({slo_text(slo)})."
    )
    return first, second


def write_report(
    frame: pd.DataFrame, baselines: Baselines, title: str, out_dir: Path, share: float, declared: bool = True
) -> int:
    """Write report.md, report.tex and the figures of a serving sweep; print the tables; the exit status
    (1 when no configuration has a successful measurement at any rate)."""
    slo = serving.slo_of(frame)
    points = serving.points_table(frame)
    table = serving.sustained_table(points, slo, share, baselines.of)
    judged = any(v is not None for v in slo.values())
    colors = labels.config_colors(list(dict.fromkeys(points["config"])), baselines.labels)
    paths, notes = serving_figures.serving_figures(points, out_dir, colors, slo, share)
    header = header_lines(title, frame, points, slo, share, declared, baselines)
    sustained_md = to_markdown(sustained_display(table, frame, points, judged)) if not table.empty else NA
    points_md = to_markdown(points_display(points))
    body = ["", "## Sustained request rate", "", sustained_md, "", "## Per request rate", "", points_md]
    write_text("\n".join(header + body + figure_lines(paths, notes)), out_dir / "report.md")
    captions = latex_captions(slo, share, frame)
    tex = [to_latex(sustained_display(table, frame, points, judged), captions[0])] if not table.empty else []
    write_text("\n\n".join(tex + [to_latex(points_display(points), captions[1])]), out_dir / "report.tex")
    print("\n".join(header[2:] + body))
    print(f"\nwrote {out_dir / 'report.md'}, {out_dir / 'report.tex'}, {len(paths)} figure files")
    if not (points["ok_trials"] > 0).any():
        print("error: nothing to compare (no successful measurement at any rate)", file=sys.stderr)
        return 1
    return 0
