"""Figures, each saved as PNG and PDF; every function returns the paths it wrote.

Figures are built with ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot global state),
so this works headless and never opens a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import stats
from analysis.records import config_columns, config_label

FIGURE_FORMATS = ("png", "pdf")
BASE_COLOR = "#9e9e9e"
BAR_COLOR = "#3b6ea8"


def save_figure(fig: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``<out_dir>/<stem>.png`` and ``.pdf``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.{ext}" for ext in FIGURE_FORMATS]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def error_bars(summary: pd.DataFrame) -> np.ndarray:
    """2xN (below, above) distances from the median to min and max; 0 where unknown."""
    below = (summary["median"] - summary["min"]).to_numpy(dtype=float)
    above = (summary["max"] - summary["median"]).to_numpy(dtype=float)
    return np.clip(np.nan_to_num(np.vstack([below, above])), 0.0, None)


def tick_label(label: str) -> str:
    """One ``k=v`` per line, so long configuration labels stay readable."""
    return label.replace(" ", "\n")


def bar_labels(summary: pd.DataFrame) -> list[str]:
    """With a baseline, each bar names only what differs from it (six switches per bar overlap);
    otherwise the whole configuration."""
    pairs = [str(label).split(" ") for label in summary["config"]]
    base = next((p for p, is_base in zip(pairs, summary["is_baseline"]) if is_base), None)
    if base is None:
        return [tick_label(str(label)) for label in summary["config"]]
    return [
        "baseline" if is_base else "\n".join(kv for kv in p if kv not in base) or "(as baseline)"
        for p, is_base in zip(pairs, summary["is_baseline"])
    ]


def mark_failed(ax, summary: pd.DataFrame) -> None:
    for x, value in enumerate(summary["median"]):
        if pd.isna(value):
            ax.text(x, 0, "failed", rotation=90, ha="center", va="bottom", color="#b00020")


def plot_metric_bars(summary: pd.DataFrame, metric: str, out_dir: str | Path, stem: str = "metric_bars") -> list[Path]:
    """Bar per configuration (summary-table order): median, min–max error bars; the baseline in grey."""
    fig = Figure(figsize=(max(6.0, 1.1 * len(summary) + 2.0), 4.5))
    ax = fig.subplots()
    x = np.arange(len(summary))
    colors = [BASE_COLOR if is_base else BAR_COLOR for is_base in summary["is_baseline"]]
    ax.bar(x, summary["median"].fillna(0.0), yerr=error_bars(summary), capsize=4, color=colors)
    mark_failed(ax, summary)
    ax.set_xticks(x, bar_labels(summary), fontsize=8, rotation=20, ha="right")
    ax.set_ylabel(metric)
    fig.subplots_adjust(bottom=0.22)
    ax.set_title(f"{metric} per configuration (median, bars: min–max over trials)")
    return save_figure(fig, out_dir, stem)


def plot_ablation_staircase(
    summary: pd.DataFrame,
    metric: str,
    out_dir: str | Path,
    order: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    stem: str = "ablation_staircase",
) -> list[Path]:
    """Cumulative ablation: one bar per step in ``order`` (default: table order), a step line through
    the medians, and each step annotated with its speedup over the first step. ``labels`` name the steps
    (e.g. from :func:`analysis.records.step_labels`)."""
    steps = summary.set_index("config").loc[list(order or summary["config"])].reset_index()
    medians = steps["median"].to_numpy(dtype=float)
    fig = Figure(figsize=(max(6.0, 1.1 * len(steps) + 2.0), 4.5))
    ax = fig.subplots()
    x = np.arange(len(steps))
    ax.bar(x, np.nan_to_num(medians), yerr=error_bars(steps), capsize=4, color=BAR_COLOR, alpha=0.8)
    ax.step(x, medians, where="mid", color="black", linewidth=1.2)
    tops = np.fmax(steps["max"].to_numpy(dtype=float), medians)
    for xi, value, top in zip(x, medians, tops):
        if np.isfinite(value) and medians[0]:
            ax.annotate(f"{value / medians[0]:.2f}x", (xi, top), textcoords="offset points", xytext=(0, 4),
                        ha="center", fontsize=8)  # fmt: skip
    mark_failed(ax, steps)
    ax.set_xticks(x, [tick_label(label) for label in (labels or steps["config"])], fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"Cumulative ablation: {metric} as optimizations are added")
    return save_figure(fig, out_dir, stem)


def batch_points(rows: pd.DataFrame, batch_column: str, metric: str) -> tuple[np.ndarray, ...]:
    """(batch sizes, medians, 2xN min–max error bars) of one series, sorted by batch size."""
    points = rows.groupby(pd.to_numeric(rows[batch_column]))[metric].agg(list)
    medians = np.array([stats.median(values) for values in points])
    spreads = np.array([stats.spread(values) for values in points]).reshape(-1, 2)
    yerr = np.clip(np.nan_to_num(np.vstack([medians - spreads[:, 0], spreads[:, 1] - medians])), 0.0, None)
    return points.index.to_numpy(dtype=float), medians, yerr


def plot_metric_vs_batch_size(
    frame: pd.DataFrame,
    metric: str,
    out_dir: str | Path,
    batch_column: str = "switch.max_num_seqs",
    stem: str = "metric_vs_batch_size",
) -> list[Path]:
    """Median ``metric`` (min–max bars) against ``batch_column``, one line per other configuration."""
    if batch_column not in frame:
        raise ValueError(f"no column {batch_column!r} to plot against")
    ok = frame[frame["status"] == "ok"]
    series_columns = [c for c in config_columns(frame) if c != batch_column]
    series = pd.Series([config_label(r, series_columns) for r in ok.to_dict("records")], index=ok.index)
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.subplots()
    for name, rows in ok.groupby(series, sort=False):
        sizes, medians, yerr = batch_points(rows, batch_column, metric)
        ax.errorbar(sizes, medians, yerr=yerr, marker="o", capsize=3, label=name)
    sizes = pd.to_numeric(ok[batch_column]).dropna()
    if len(sizes) and sizes.min() > 0 and sizes.max() / sizes.min() >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(batch_column.removeprefix("switch."))
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    ax.set_title(f"{metric} vs batch size")
    return save_figure(fig, out_dir, stem)


TRACE_COLUMNS = ("step", "step_ms", "batch_size")


def read_trace(trace_csv: str | Path) -> pd.DataFrame:
    """A ``trace.csv`` with at least the columns step, step_ms, batch_size."""
    trace = pd.read_csv(trace_csv)
    missing = [c for c in TRACE_COLUMNS if c not in trace]
    if missing:
        raise ValueError(f"{trace_csv}: missing trace columns {missing}")
    return trace


def plot_step_timeline(
    trace_csv: str | Path, out_dir: str | Path, stem: str = "timeline", title: str | None = None
) -> list[Path]:
    """Step time (left axis, coloured by prefill/decode) and batch size (right axis) per step."""
    trace = read_trace(trace_csv)
    fig = Figure(figsize=(9.0, 4.0))
    ax = fig.subplots()
    ax.plot(trace["step"], trace["step_ms"], color="#cccccc", linewidth=0.8, zorder=1)
    kinds = trace["kind"] if "kind" in trace else pd.Series("step", index=trace.index)
    for kind, rows in trace.groupby(kinds, sort=True):
        ax.scatter(rows["step"], rows["step_ms"], s=8, label=f"{kind} step_ms", zorder=2)
    ax.set_xlabel("step")
    ax.set_ylabel("step time (ms)")
    batch_ax = ax.twinx()
    batch_ax.step(trace["step"], trace["batch_size"], where="post", color="#d95f02", label="batch_size")
    batch_ax.set_ylabel("batch size")
    handles, names = zip(*[(h, n) for a in (ax, batch_ax) for h, n in zip(*a.get_legend_handles_labels())])
    ax.legend(handles, names, fontsize=7, loc="upper right")
    ax.set_title(f"Per-step timeline: {title or Path(trace_csv).parent.name}", fontsize=10)
    return save_figure(fig, out_dir, stem)
