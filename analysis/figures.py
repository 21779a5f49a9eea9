"""Figures whose kind follows the experiment's declared kind: the staircase of a cumulative ablation,
the metric against a swept parameter, and the per-step timeline of one job's trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from analysis.labels import BASELINE_COLOR, wrap
from analysis.plots import error_bars, save_figure
from analysis.records import format_value, override_pairs, parse_override_value

TRACE_COLUMNS = ("step", "step_ms", "batch_size")
SKIPPED_OVERRIDES = ("trial", "hydra.sweep.dir", "resume")
WIDE = 7.0


def plot_ablation_staircase(
    summary: pd.DataFrame,
    metric: str,
    out_dir: str | Path,
    order: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    stem: str = "ablation_staircase",
    colors: Mapping[str, str] | None = None,
) -> list[Path]:
    """Cumulative ablation: a bar per step in ``order``, a step line through the medians, each step
    annotated with its speedup over the first and ``*`` where that is significant."""
    steps = summary.set_index("config").loc[list(order or summary["config"])].reset_index()
    medians = steps["median"].to_numpy(dtype=float)
    fig = Figure(figsize=(max(6.0, 0.75 * len(steps) + 2.0), 4.6))
    ax = fig.subplots()
    x = np.arange(len(steps))
    colours = [(colors or {}).get(label, BASELINE_COLOR) for label in steps["config"]]
    ax.bar(x, np.nan_to_num(medians), yerr=error_bars(steps), capsize=3, color=colours)
    ax.step(x, medians, where="mid", color="black", linewidth=1.0)
    tops = np.fmax(steps["max"].to_numpy(dtype=float), medians)
    for xi, (_, row), top in zip(x, steps.iterrows(), tops):
        if np.isfinite(row["speedup"]) and not row["is_baseline"]:
            text = f"{row['speedup']:.2f}x" + ("*" if row["significant"] else "")
            ax.annotate(text, (xi, top), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
        elif not np.isfinite(row["median"]):
            ax.text(xi, 0, "failed", rotation=90, ha="center", va="bottom", fontsize=8, color="#b00020")
    rotation = 0 if len(steps) <= 4 else 35
    ticks = [wrap(label, 14 if rotation == 0 else 22) for label in (labels or steps["config"])]
    ax.set_xticks(x, ticks, fontsize=7, rotation=rotation, ha="center" if rotation == 0 else "right")
    ax.set_ylabel(metric)
    ax.set_title(f"Cumulative ablation: {metric}", fontsize=10)
    ax.margins(y=0.12)
    return save_figure(fig, out_dir, stem)


# --------------------------------------------------------------------------- sweep over a parameter


def swept_parameters(frame: pd.DataFrame) -> dict[str, list[object]]:
    """``{override key: value per row}`` for the command-line overrides that vary across the jobs."""
    pairs = [override_pairs(text) for text in frame["override_dirname"]]
    keys = dict.fromkeys(k for p in pairs for k in p if k.lstrip("+") not in SKIPPED_OVERRIDES)
    columns = {k: [parse_override_value(p[k]) if k in p else None for p in pairs] for k in keys}
    return {k: v for k, v in columns.items() if len({format_value(x) for x in v}) > 1}


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sweep_axis(frame: pd.DataFrame) -> tuple[str, pd.Series] | None:
    """The swept parameter with numbers for values (the figure's x axis), else None."""
    for key, values in swept_parameters(frame).items():
        if all(is_number(v) for v in values if v is not None):
            return key.lstrip("+"), pd.Series(values, index=frame.index, dtype=float)
    return None


def series_of(frame: pd.DataFrame, axis_key: str) -> dict[str, str]:
    """``{config: series name}``: the values of the other swept overrides (``"prefix_caching=true"``)."""
    others = {k: v for k, v in swept_parameters(frame).items() if k.lstrip("+") != axis_key}
    names = [" ".join(f"{k.lstrip('+')}={format_value(v[i])}" for k, v in others.items()) or "all"
             for i in range(len(frame))]  # fmt: skip
    return dict(zip(frame["config"], names))


def plot_sweep(
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    metric: str,
    out_dir: str | Path,
    stem: str = "metric_vs_parameter",
    colors: Mapping[str, str] | None = None,
) -> list[Path]:
    """Median ``metric`` (min–max whiskers) against the swept numeric parameter, one line per series."""
    axis = sweep_axis(frame)
    if axis is None:
        raise ValueError("no swept parameter with numeric values to plot against")
    key, x_of_row = axis
    x_of = dict(zip(frame["config"], x_of_row))
    series = series_of(frame, key)
    table = summary.assign(x=summary["config"].map(x_of), series=summary["config"].map(series)).sort_values("x")
    fig = Figure(figsize=(WIDE, 4.2))
    ax = fig.subplots()
    for name, rows in table.groupby("series", sort=False):
        colour = (colors or {}).get(rows["config"].iloc[0], BASELINE_COLOR)
        ax.errorbar(rows["x"], rows["median"], yerr=error_bars(rows), marker="o", capsize=3, color=colour,
                    label=wrap(name, 40))  # fmt: skip
    xs = table["x"].dropna()
    if len(xs) and xs.min() > 0 and xs.max() / xs.min() >= 8:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    if table["series"].nunique() > 1:
        ax.legend(fontsize=7)
    ax.set_title(f"{metric} vs {key}", fontsize=10)
    return save_figure(fig, out_dir, stem)


# --------------------------------------------------------------------------- timeline of one job


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
    """Step time (left axis, by step kind) and batch size (right axis) per step."""
    trace = read_trace(trace_csv)
    fig = Figure(figsize=(WIDE, 3.4))
    ax = fig.subplots()
    ax.plot(trace["step"], trace["step_ms"], color="#cccccc", linewidth=0.8, zorder=1)
    kinds = trace["kind"] if "kind" in trace else pd.Series("step", index=trace.index)
    for kind, rows in trace.groupby(kinds, sort=True):
        ax.scatter(rows["step"], rows["step_ms"], s=8, label=f"{kind} step (ms)", zorder=2)
    ax.set_xlabel("step")
    ax.set_ylabel("step time (ms)")
    batch_ax = ax.twinx()
    batch_ax.step(trace["step"], trace["batch_size"], where="post", color="#d95f02", label="batch size")
    batch_ax.set_ylabel("batch size")
    handles, names = zip(*[(h, n) for a in (ax, batch_ax) for h, n in zip(*a.get_legend_handles_labels())])
    ax.legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=len(names), frameon=False)
    ax.set_title(wrap(f"Timeline: {title or Path(trace_csv).parent.name}", 70), fontsize=9)
    return save_figure(fig, out_dir, stem)
