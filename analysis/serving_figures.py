"""The figures serving papers use, against the offered request rate: p50 and p99 TTFT, p50 and p99
TPOT, p99 ITL, and goodput (beside the offered-rate diagonal) with the share of requests within the
SLOs. One line per configuration through the medians over trials, a band from the lowest to the
highest trial, an ``x`` on the axis where every trial at that rate failed. PNG + PDF, 7 inches wide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from matplotlib.transforms import blended_transform_factory

from analysis.labels import BASELINE_COLOR, wrap
from analysis.plots import FAILED_COLOR, save_figure
from analysis.serving import ATTAINMENT

WIDTH = 7.0
PANEL_HEIGHT = 3.0
LOG_SPAN = 20.0  # a y range wider than this factor is drawn on a log scale
SLO_STYLE = {"color": "black", "linestyle": "--", "linewidth": 0.9}
NAMES = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2e": "E2E latency"}
INF_LABEL = "∞"


class RateAxis:
    """Where each offered rate sits on the x axis: finite rates at their value (on a log axis when they
    were swept geometrically: 1, 2, 4, ...), ``inf`` (all at once) one typical step right of the
    highest finite rate, labelled ``∞``."""

    def __init__(self, rates: Sequence[float]):
        finite = sorted({r for r in rates if np.isfinite(r)})
        self.log = is_geometric(finite)
        steps = np.diff(np.log(finite) if self.log else finite)
        step = float(np.median(steps)) if steps.size else 1.0
        last = finite[-1] if finite else 0.0
        self.inf_at = last * math.exp(step) if self.log else last + max(step, 1e-9 + abs(last) * 0.1)
        self.ticks = finite + ([self.inf_at] if any(math.isinf(r) for r in rates) else [])
        self.labels = [f"{r:g}" for r in finite] + ([INF_LABEL] if len(self.ticks) > len(finite) else [])

    def x(self, rates: Sequence[float]) -> np.ndarray:
        return np.array([self.inf_at if math.isinf(r) else r for r in rates], dtype=float)

    def apply(self, ax) -> None:
        if self.log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(self.ticks, self.labels, fontsize=7)
        ax.set_xlabel("offered request rate (req/s)" + (", log scale" if self.log else ""), fontsize=8)
        ax.tick_params(axis="y", labelsize=7)


def is_geometric(rates: Sequence[float]) -> bool:
    """True when positive rates spanning at least 8x are more evenly spaced on a log axis than on a
    linear one (1, 2, 4, 8, 16 rather than 4, 8, 12, 16)."""
    if len(rates) < 3 or rates[0] <= 0 or rates[-1] / rates[0] < 8:
        return False
    linear, logarithmic = np.diff(rates), np.diff(np.log(rates))
    return float(np.std(logarithmic) / np.mean(logarithmic)) < float(np.std(linear) / np.mean(linear))


def draw_metric(ax, points: pd.DataFrame, metric: str, colors: Mapping[str, str], axis: RateAxis) -> None:
    """Median line with markers, min–max band, failed-rate marks, one series per configuration."""
    for config, rows in points[points["request_rate"].notna()].groupby("config", sort=False):
        colour = colors.get(config, BASELINE_COLOR)
        x = axis.x(rows["request_rate"])
        median = rows[metric].to_numpy(dtype=float)
        ax.plot(x, median, marker="o", markersize=3.5, linewidth=1.4, color=colour, label=config)
        low, high = rows[f"{metric}.min"].to_numpy(dtype=float), rows[f"{metric}.max"].to_numpy(dtype=float)
        ax.fill_between(x, low, high, color=colour, alpha=0.18, linewidth=0)
        failed = x[rows["ok_trials"].to_numpy() == 0]
        if not failed.size:
            continue
        marks = blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot(failed, np.zeros_like(failed), "x", color=FAILED_COLOR, markersize=7, transform=marks, clip_on=False,
                label="every trial failed")  # fmt: skip


def scale_y(ax, values: np.ndarray, floor: float | None = None) -> None:
    """Log scale when the values span more than :data:`LOG_SPAN`, else linear from ``floor``."""
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size and finite.max() / finite.min() > LOG_SPAN:
        ax.set_yscale("log")
    elif floor is not None:
        ax.set_ylim(bottom=floor)


def slo_line(ax, bound: float | None, unit: str = "ms") -> None:
    if bound is not None:
        ax.axhline(bound, **SLO_STYLE, label=f"SLO {bound:g} {unit}")


def legend_below(fig: Figure, axes: Sequence) -> None:
    """One legend for the whole figure, below the panels: configurations, then reference lines."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(name, handle)
    columns = min(len(entries), 4)
    fig.legend(list(entries.values()), [wrap(n, 30) for n in entries], loc="upper center", ncol=max(columns, 1),
               fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))  # fmt: skip


def panels(count: int) -> tuple[Figure, list]:
    fig = Figure(figsize=(WIDTH, PANEL_HEIGHT), layout="constrained")
    axes = fig.subplots(1, count, sharey=True) if count > 1 else [fig.subplots()]
    return fig, list(axes)


def plot_latency_percentiles(
    points: pd.DataFrame,
    latency: str,
    out_dir: str | Path,
    colors: Mapping[str, str],
    slo: float | None = None,
    stats: Sequence[str] = ("p50", "p99"),
) -> list[Path]:
    """``latency`` (ttft | tpot | itl | e2e) at each statistic against the rate, one panel each, the
    panels sharing their y axis so p50 and p99 compare at a glance; the SLO as a dashed line."""
    axis = RateAxis(list(points["request_rate"].dropna()))
    fig, axes = panels(len(stats))
    metrics = [f"{latency}_ms_{stat}" for stat in stats]
    for ax, stat, metric in zip(axes, stats, metrics):
        draw_metric(ax, points, metric, colors, axis)
        slo_line(ax, slo)
        axis.apply(ax)
        ax.set_title(f"{stat} {NAMES[latency]}", fontsize=9)
        ax.grid(True, alpha=0.3)
    values = np.concatenate([points[f"{m}{end}"].to_numpy(dtype=float) for m in metrics for end in ("", ".max")])
    scale_y(axes[0], np.append(values, [] if slo is None else [slo]), floor=0.0)
    axes[0].set_ylabel(f"{NAMES[latency]} (ms)", fontsize=8)
    legend_below(fig, axes)
    stem = f"{latency}_" + "_".join(stats) + "_vs_rate"
    return save_figure(fig, out_dir, stem)


def plot_goodput(
    points: pd.DataFrame, out_dir: str | Path, colors: Mapping[str, str], share: float | None
) -> list[Path]:
    """Left: goodput (requests/s within every SLO) against the offered rate, with the diagonal where
    every offered request is served within the SLOs. Right: the share of requests within the SLOs,
    with the share a rate must reach to count as sustained."""
    axis = RateAxis(list(points["request_rate"].dropna()))
    fig = Figure(figsize=(WIDTH, PANEL_HEIGHT), layout="constrained")
    left, right = fig.subplots(1, 2)
    draw_metric(left, points, "goodput_req_s", colors, axis)
    finite = [t for t, label in zip(axis.ticks, axis.labels) if label != INF_LABEL]
    if finite:
        # many points: on a log rate axis the line y = x is a curve
        xs = np.geomspace(min(finite), max(finite), 64) if axis.log else np.array([0.0, max(finite)])
        left.plot(xs, xs, color="black", linewidth=0.8, linestyle=":", label="offered rate")
    left.set_ylim(bottom=0)
    left.set_ylabel("goodput (req/s within SLO)", fontsize=8)
    left.set_title("goodput", fontsize=9)
    draw_metric(right, points.assign(**percent(points)), ATTAINMENT, colors, axis)
    if share is not None:
        right.axhline(100 * share, **SLO_STYLE, label=f"sustained: ≥ {100 * share:g}% within SLO")
    right.set_ylim(-3, 103)
    right.set_ylabel("requests within SLO (%)", fontsize=8)
    right.set_title("SLO attainment", fontsize=9)
    for ax in (left, right):
        axis.apply(ax)
        ax.grid(True, alpha=0.3)
    legend_below(fig, (left, right))
    return save_figure(fig, out_dir, "goodput_vs_rate")


def percent(points: pd.DataFrame) -> dict[str, pd.Series]:
    return {f"{ATTAINMENT}{end}": 100 * points[f"{ATTAINMENT}{end}"] for end in ("", ".min", ".max")}


def serving_figures(
    points: pd.DataFrame, out_dir: str | Path, colors: Mapping[str, str], slo: Mapping[str, float | None], share: float
) -> tuple[list[Path], list[str]]:
    """Every serving figure, and notes on what was not drawn."""
    paths: list[Path] = []
    notes: list[str] = []
    if not points["request_rate"].notna().any():
        return paths, ["no record states its request rate: no serving curves"]
    paths += plot_latency_percentiles(points, "ttft", out_dir, colors, slo.get("ttft_ms"))
    paths += plot_latency_percentiles(points, "tpot", out_dir, colors, slo.get("tpot_ms"))
    paths += plot_latency_percentiles(points, "itl", out_dir, colors, None)
    if points["goodput_req_s"].notna().any():
        paths += plot_goodput(points, out_dir, colors, share)
    else:
        notes.append("no record has goodput_req_s (no SLO judged): no goodput figure")
    return paths, notes
