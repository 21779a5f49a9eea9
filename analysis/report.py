"""Summarize a sweep folder: ``report.md``, ``report.tex`` and figures (PNG + PDF); prints the table.

Usage (from the repo root)::

    python analysis/report.py <sweep_folder> [--metric output_tok_s] [--baseline POINT|"k=v,k=v"]
        [--per KEY] [--kind cumulative|leave_one_out|sweep|serving] [--columns M,M] [--slo-share S] [--out DIR]
    python -m analysis.report <sweep_folder> ...

A serving sweep (kind ``serving``, declared by the experiment or found in records offered several
request rates) gets its own report: latency percentiles and goodput against the request rate, and the
highest rate each configuration sustains within its SLOs (:mod:`analysis.serving_report`).

The report is always written, failed jobs included (also when every job failed); the exit status is
1 when there was nothing to compare (no successful measurement, or no configuration with a speedup).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd

from analysis import figures, labels, plots, records, report_text, serving, serving_report, summary, tables
from analysis.baseline import Baselines, choose_baselines

KINDS = ("cumulative", "leave_one_out", "sweep", "serving")
DEFAULT_METRIC = "output_tok_s"
PREFIX_COLUMNS = ("prefix_hit_rate", "counter.prefill_tokens_computed")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_folder", type=Path, help="folder searched recursively for result.json")
    parser.add_argument("--metric", help=f"metric column to summarize (default {DEFAULT_METRIC}; not for serving)")
    parser.add_argument("--baseline", help='a point name, or switch values: "attention=sdpa,cuda_graphs=false" '
                        "(default: the experiment's declared baseline)")  # fmt: skip
    parser.add_argument("--per", default="", help="compare within groups of these comma-separated columns")
    parser.add_argument("--kind", choices=KINDS, help="experiment kind (default: the one the records declare)")
    parser.add_argument("--columns", default="", help="more metrics or counters shown as medians, comma-separated")
    parser.add_argument("--slo-share", type=float, default=serving.DEFAULT_SLO_SHARE,
                        help="serving: share of requests within every SLO that a sustained rate needs "
                        f"(default {serving.DEFAULT_SLO_SHARE})")  # fmt: skip
    parser.add_argument("--out", type=Path, help="output folder (default: <sweep_folder>/report)")
    args = parser.parse_args(argv)
    if not 0.0 < args.slo_share <= 1.0:
        parser.error(f"--slo-share must be in (0, 1], got {args.slo_share}")
    return args


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text.replace("=", "-")).strip("_")[:80] or "config"


def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def declared(frame: pd.DataFrame, column: str) -> str | None:
    values = sorted(set(frame[column].dropna().astype(str))) if column in frame else []
    if len(values) > 1:
        raise ValueError(f"the records come from several experiments ({column}: {values}); report them apart")
    return values[0] if values else None


def extra_columns(frame: pd.DataFrame, requested: Sequence[str]) -> list[str]:
    """Requested columns, plus the prefix hit rate and computed prompt tokens where prefix caching varies."""
    unknown = [c for c in requested if c not in frame]
    if unknown:
        available = ", ".join(records.metric_columns(frame))
        raise ValueError(f"--columns {unknown} not in the records; available: {available}")
    caching_varies = "switch.prefix_caching" in records.config_columns(frame)
    automatic = [c for c in PREFIX_COLUMNS if c in frame] if caching_varies else []
    return list(dict.fromkeys([*requested, *automatic]))


def timeline_figures(frame: pd.DataFrame, out_dir: Path, names: dict[str, str]) -> list[Path]:
    """One step timeline per configuration, from its first trial that left a trace."""
    traced = frame[frame["trace_path"].notna()].drop_duplicates("config")
    paths: list[Path] = []
    for index, (config, trace) in enumerate(zip(traced["config"], traced["trace_path"])):
        label = names.get(config, config)
        paths += figures.plot_step_timeline(trace, out_dir, f"timeline_{index:02d}_{slug(label)}", label)
    return paths


def aa_band(aa: pd.DataFrame) -> tuple[float, float] | None:
    if aa.empty or pd.isna(aa["ci_low"].iloc[0]):
        return None
    return float(aa["ci_low"].iloc[0]), float(aa["ci_high"].iloc[0])


def kind_figures(
    frame: pd.DataFrame, table: pd.DataFrame, metric: str, kind: str | None, out: Path, colors: dict, aa: pd.DataFrame
) -> tuple[list[Path], list[str]]:
    """The figures the experiment's kind calls for, and notes on what was not drawn."""
    paths = plots.plot_metric_bars(table, metric, out, f"{metric}_bars", colors)
    notes: list[str] = []
    if (~table["is_baseline"]).any():
        paths += plots.plot_speedup_bars(table, out, f"{metric}_speedup", colors, aa_band(aa), metric)
    if kind == "cumulative":
        order = records.config_order(frame)
        steps = labels.step_labels(frame, order)
        paths += figures.plot_ablation_staircase(table, metric, out, order, steps, f"{metric}_staircase", colors)
    elif kind == "sweep" and figures.sweep_axis(frame) is not None:
        paths += figures.plot_sweep(frame, table, metric, out, f"{metric}_vs_parameter", colors)
    elif kind == "sweep":
        notes.append("no swept parameter has numeric values: no line figure, the bars say it all")
    return paths, notes


def figure_colors(frame: pd.DataFrame, kind: str | None, baselines: Baselines) -> dict:
    axis = figures.sweep_axis(frame) if kind == "sweep" else None
    series = figures.series_of(frame, axis[0]) if axis else None
    return labels.config_colors(records.config_order(frame), baselines.labels, series)


def nothing_to_compare(table: pd.DataFrame) -> bool:
    if not np.isfinite(table["median"].to_numpy(dtype=float)).any():
        return True
    others = table[~table["is_baseline"]]
    return len(others) > 0 and not np.isfinite(others["speedup"].to_numpy(dtype=float)).any()


def load(args: argparse.Namespace) -> tuple[pd.DataFrame, str | None, Baselines, list[str]]:
    """Labelled records, kind, baselines and extra columns; user errors become one-line exits."""
    try:
        frame = records.add_config_labels(records.load_records(args.sweep_folder))
        kind = args.kind or declared(frame, "experiment_kind") or ("serving" if serving.is_rate_sweep(frame) else None)
        if kind == "serving" and (args.columns or args.metric):
            raise ValueError("--metric and --columns do not apply to a serving report (it shows every latency "
                             "percentile and goodput against the request rate)")  # fmt: skip
        args.metric = args.metric or DEFAULT_METRIC
        if kind != "serving" and args.metric not in frame and (frame["status"] == "ok").any():
            available = ", ".join(records.metric_columns(frame)) or "none"
            raise ValueError(f"metric {args.metric!r} not found in the records; available: {available}")
        per = [records.SWITCH_PREFIX + p if "switch." + p in frame else p for p in split_list(args.per)]
        baselines = choose_baselines(frame, args.baseline, per, kind)
        return frame, kind, baselines, extra_columns(frame, split_list(args.columns))
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    frame, kind, baselines, extras = load(args)
    if kind == "serving":
        return report_serving(args, frame, baselines)
    table = summary.build_summary_table(frame, args.metric, baselines.of, extras)
    aa = summary.aa_floor(frame, args.metric)
    display = tables.format_summary_table(table, args.metric, frame, extras)
    out_dir = args.out or args.sweep_folder / "report"
    colors = figure_colors(frame, kind, baselines)
    names = labels.figure_labels(frame, baselines.of)
    paths, notes = kind_figures(frame, table.assign(label=table["config"].map(names)), args.metric, kind, out_dir,
                                colors, aa)  # fmt: skip
    paths += timeline_figures(frame, out_dir, names)
    title = declared(frame, "experiment") or f"`{args.sweep_folder}`"
    stated = summary.stated_comparisons(frame, args.metric)
    header = report_text.header_lines(title, frame, table, args.metric, kind, baselines, aa, stated)
    table_md = tables.to_markdown(display)
    lines = header + ["", table_md] + report_text.figure_lines(paths, notes)
    tables.write_text("\n".join(lines), out_dir / "report.md")
    caption = report_text.latex_caption(args.metric, baselines, frame)
    tables.write_text(tables.to_latex(display, caption), out_dir / "report.tex")
    print("\n".join(header[2:]) + "\n\n" + table_md)
    print(f"\nwrote {out_dir / 'report.md'}, {out_dir / 'report.tex'}, {len(paths)} figure files")
    if nothing_to_compare(table):
        print("error: nothing to compare (no successful measurement with a baseline)", file=sys.stderr)
        return 1
    return 0


def report_serving(args: argparse.Namespace, frame: pd.DataFrame, baselines: Baselines) -> int:
    title = declared(frame, "experiment") or f"`{args.sweep_folder}`"
    was_declared = args.kind == "serving" or declared(frame, "experiment_kind") == "serving"
    out_dir = args.out or args.sweep_folder / "report"
    try:
        return serving_report.write_report(frame, baselines, title, out_dir, args.slo_share, was_declared)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
