"""Bar figures of a summary table, each saved as PNG and vector PDF; every function returns the paths.

Figures are built with ``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot global state), so
this works headless. Configurations are rows of horizontal bars (labels stay readable for 2 to 20 of
them; the figure grows with their number), in the colours the report assigned them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
from PIL import Image

from analysis.labels import BASELINE_COLOR, wrap

FIGURE_FORMATS = ("png", "pdf")
WIDTH = 7.0
FAILED_COLOR = "#b00020"


def save_figure(fig: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``<out_dir>/<stem>.png`` (palette colours, see small_png) and ``.pdf`` (vector)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.{ext}" for ext in FIGURE_FORMATS]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    small_png(paths[0])
    return paths


def small_png(path: Path) -> None:
    """Re-encode a chart's PNG with a 256-colour palette: the same picture at about 40% of the bytes, so that
    committed results stay small (the PDF keeps the exact figure)."""
    with Image.open(path) as image:
        palette = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)


def rows_figure(count: int) -> tuple[Figure, object]:
    """A figure for ``count`` horizontal bars: about 0.4 inch a bar, never under 2.6 inches."""
    fig = Figure(figsize=(WIDTH, max(2.6, 0.42 * count + 1.4)))
    return fig, fig.subplots()


def colours_of(summary: pd.DataFrame, colors: Mapping[str, str] | None) -> list[str]:
    return [(colors or {}).get(label, BASELINE_COLOR) for label in summary["config"]]


def label_rows(ax, summary: pd.DataFrame) -> np.ndarray:
    y = np.arange(len(summary))
    names = summary["label"] if "label" in summary else summary["config"]
    ax.set_yticks(y, [wrap(label, 28) for label in names], fontsize=8)
    ax.invert_yaxis()  # first configuration on top
    return y


def error_bars(summary: pd.DataFrame) -> np.ndarray:
    """2xN (below, above) distances from the median to min and max; 0 where unknown."""
    below = (summary["median"] - summary["min"]).to_numpy(dtype=float)
    above = (summary["max"] - summary["median"]).to_numpy(dtype=float)
    return np.clip(np.nan_to_num(np.vstack([below, above])), 0.0, None)


def mark_failed_rows(ax, summary: pd.DataFrame, y: np.ndarray, x: float = 0.0) -> None:
    for yi, value in zip(y, summary["median"]):
        if pd.isna(value):
            ax.text(x, yi, " failed", va="center", ha="left", fontsize=8, color=FAILED_COLOR)


def plot_metric_bars(
    summary: pd.DataFrame,
    metric: str,
    out_dir: str | Path,
    stem: str = "metric_bars",
    colors: Mapping[str, str] | None = None,
) -> list[Path]:
    """One bar per configuration: the median, min–max whiskers and every trial as a dot."""
    fig, ax = rows_figure(len(summary))
    y = label_rows(ax, summary)
    ax.barh(y, summary["median"].fillna(0.0), xerr=error_bars(summary), capsize=3, color=colours_of(summary, colors))
    for yi, values in zip(y, summary["values"]):
        ax.plot(values, [yi] * len(values), "o", color="black", markersize=2.5, zorder=3)
    mark_failed_rows(ax, summary, y)
    ax.set_xlabel(f"{metric} (bar: median; whiskers: min–max; dots: trials)", fontsize=8)
    ax.set_title(f"{metric} per configuration", fontsize=10)
    return save_figure(fig, out_dir, stem)


RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0,
               20.0, 50.0, 100.0)  # fmt: skip


def ratio_ticks(ax, most: int = 9) -> None:
    """Plain-number ticks on a log ratio axis (``0.5 1 2``), at most ``most`` of them."""
    low, high = ax.get_xlim()
    gap = np.log(high / low) / most  # ticks at least this far apart on the log axis, outward from 1
    ticks = [1.0]
    for side in ([t for t in RATIO_TICKS if 1.0 < t <= high], [t for t in reversed(RATIO_TICKS) if low <= t < 1.0]):
        last = 1.0
        for tick in side:
            if abs(np.log(tick / last)) >= gap:
                ticks.append(tick)
                last = tick
    ticks.sort()
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_speedup_bars(
    summary: pd.DataFrame,
    out_dir: str | Path,
    stem: str = "speedup_bars",
    colors: Mapping[str, str] | None = None,
    aa: tuple[float, float] | None = None,
    metric: str = "",
) -> list[Path]:
    """Each configuration's speedup over its baseline (1 = as fast) with its 95% interval. Significant
    bars are solid and starred, the others pale; ``no spread`` bars (too few trials) are hatched. ``aa``
    shades the A/A pair's interval: the noise floor measured in the same sweep."""
    rows = summary[~summary["is_baseline"]].reset_index(drop=True)
    fig, ax = rows_figure(max(len(rows), 1))
    y = label_rows(ax, rows)
    speedups = rows["speedup"].to_numpy(dtype=float)
    lows, highs = rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float)
    xerr = np.clip(np.nan_to_num(np.vstack([speedups - lows, highs - speedups])), 0.0, None)
    if aa is not None and all(np.isfinite(aa)):
        ax.axvspan(*aa, color="#d9d9d9", alpha=0.6, zorder=0, label="A/A 95% interval (noise floor)")
    for yi, s, err, colour, (_, row) in zip(y, speedups, xerr.T, colours_of(rows, colors), rows.iterrows()):
        if not np.isfinite(s):
            ax.text(1.0, yi, " no result", va="center", fontsize=8, color=FAILED_COLOR)
            continue
        spread_known = row["verdict"] != "no spread"
        ax.barh(yi, s - 1.0, left=1.0, color=colour, alpha=1.0 if row["significant"] else 0.4,
                hatch=None if spread_known else "//", edgecolor="black" if not spread_known else colour)  # fmt: skip
        if spread_known:
            ax.errorbar(s, yi, xerr=err.reshape(2, 1), color="black", capsize=3, linewidth=1)
        note = f"{s:.2f}x" + ("*" if row["significant"] else "" if spread_known else " (no spread)")
        right = s >= 1.0
        end = s + err[1] if right else s - err[0]
        ax.annotate(note, (end, yi), xytext=(3 if right else -3, 0), textcoords="offset points",
                    va="center", ha="left" if right else "right", fontsize=7)  # fmt: skip
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")  # ratios: 0.5x and 2x equally far from 1
    ends = np.r_[speedups - xerr[0], speedups + xerr[1], [1.0]]
    ends = ends[np.isfinite(ends) & (ends > 0)]
    low, high = np.log(ends.min()), np.log(ends.max())
    pad = 0.4 * max(high - low, 0.1)  # room for the notes beside the bars
    ax.set_xlim(np.exp(low - pad), np.exp(high + pad))
    ratio_ticks(ax)
    ax.set_ylim(len(rows) - 0.4, -0.6)
    baselines = sorted(set(rows["baseline"].dropna()))
    base = baselines[0] if len(baselines) == 1 and len(baselines[0]) <= 30 else "the baseline"
    ax.set_xlabel(wrap(f"speedup vs {base} (>1 better; whiskers: 95% interval; *: significant)", 90), fontsize=8)
    ax.set_title(f"Speedup over the baseline{': ' + metric if metric else ''}", fontsize=10)
    if aa is not None:
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, out_dir, stem)
