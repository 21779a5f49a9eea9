"""Summarize a sweep folder: ``report.md``, ``report.tex`` and figures; prints the Markdown table.

Usage (from the repo root)::

    python analysis/report.py <sweep_folder> [--metric output_tok_s]
        [--baseline "attention=sdpa,cuda_graphs=false"] [--out DIR] [--bootstrap] [--staircase]
    python -m analysis.report <sweep_folder> ...
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd

from analysis import plots, records, tables

DEFAULT_BASELINE_RULE = "fewest true switches among configurations with a successful trial; ties: first job"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_folder", type=Path, help="folder searched recursively for result.json")
    parser.add_argument("--metric", default="output_tok_s", help="metric column to summarize")
    parser.add_argument("--baseline", help='switch values of the baseline, e.g. "attention=sdpa,cuda_graphs=false"')
    parser.add_argument("--out", type=Path, help="output folder (default: <sweep_folder>/report)")
    parser.add_argument("--bootstrap", action="store_true", help="add a bootstrap 95%% CI of the median")
    parser.add_argument("--staircase", action="store_true", help="always draw the cumulative-ablation plot")
    return parser.parse_args(argv)


def require_metric(frame: pd.DataFrame, metric: str) -> None:
    if metric not in frame:
        available = ", ".join(records.metric_columns(frame)) or "none"
        raise ValueError(f"metric {metric!r} not found in the records; available: {available}")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text.replace("=", "-")).strip("_")[:80] or "config"


def timeline_figures(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One step timeline per configuration, from its first trial that left a trace."""
    traced = frame[frame["trace_path"].notna()].drop_duplicates("config")
    paths: list[Path] = []
    for index, (label, trace) in enumerate(zip(traced["config"], traced["trace_path"])):
        paths += plots.plot_step_timeline(trace, out_dir, f"timeline_{index:02d}_{slug(label)}", label)
    return paths


def write_figures(
    frame: pd.DataFrame, summary: pd.DataFrame, metric: str, out_dir: Path, staircase: bool
) -> list[Path]:
    paths = plots.plot_metric_bars(summary, metric, out_dir, stem=f"{metric}_bars")
    order = list(summary["config"])
    if staircase or records.is_cumulative(frame, order):
        labels = records.step_labels(frame, order)
        paths += plots.plot_ablation_staircase(summary, metric, out_dir, order, labels, stem=f"{metric}_staircase")
    batch_column = "switch.max_num_seqs"
    if batch_column in frame and records.varies(frame[batch_column]):
        paths += plots.plot_metric_vs_batch_size(frame, metric, out_dir, batch_column, f"{metric}_vs_batch")
    return paths + timeline_figures(frame, out_dir)


def fixed_context(frame: pd.DataFrame) -> str:
    """``model=..., workload=..., device_name=...`` for context columns that are the same everywhere."""
    fixed = [c for c in records.CONFIG_CONTEXT_COLUMNS if c in frame and not records.varies(frame[c])]
    return ", ".join(f"{c}={records.format_value(frame[c].iloc[0])}" for c in fixed)


def markdown_report(
    args: argparse.Namespace, frame: pd.DataFrame, baseline: str, table_md: str, figures: list[Path]
) -> str:
    failed = int((frame["status"] != "ok").sum())
    lines = [
        f"# Benchmark report: `{args.sweep_folder}`",
        "",
        f"- records: {len(frame)} ({failed} failed)",
        f"- fixed: {fixed_context(frame) or 'n/a'}",
        f"- metric: `{args.metric}`, median over successful trials; min–max spread; speedup = ratio of medians",
        f"- baseline: `{baseline}` ({f'--baseline {args.baseline}' if args.baseline else DEFAULT_BASELINE_RULE})",
        "",
        table_md,
        "",
        "## Figures",
        "",
    ]
    lines += [f"![{path.stem}]({path.name})" for path in figures if path.suffix == ".png"]
    return "\n".join(lines)


def load_labelled(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    """The labelled records and the baseline label; user errors become a one-line exit message."""
    try:
        frame = records.add_config_labels(records.load_records(args.sweep_folder))
        require_metric(frame, args.metric)
        return frame, records.choose_baseline(frame, args.baseline)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    frame, baseline = load_labelled(args)
    summary = tables.build_summary_table(frame, args.metric, baseline, bootstrap=args.bootstrap)
    shown = tables.format_summary_table(summary, args.metric)
    out_dir = args.out or args.sweep_folder / "report"
    figures = write_figures(frame, summary, args.metric, out_dir, args.staircase)
    table_md = tables.to_markdown(shown)
    tables.write_text(markdown_report(args, frame, baseline, table_md, figures), out_dir / "report.md")
    caption = f"{args.metric}: median over trials, speedup vs {baseline}"
    tables.write_latex(shown, out_dir / "report.tex", caption=caption)
    print(table_md)
    print(f"\nbaseline: {baseline}\nwrote {out_dir / 'report.md'}, {out_dir / 'report.tex'}, {len(figures)} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
