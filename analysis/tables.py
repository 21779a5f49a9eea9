"""The per-configuration summary table, and its Markdown and LaTeX renderings.

:func:`build_summary_table` keeps numbers numeric (for tests and plots); :func:`format_summary_table`
turns them into display strings; :func:`to_markdown` / :func:`to_latex` render those.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from analysis import stats
from analysis.records import config_columns, config_order, format_value, short_name

ROOFLINE_METRIC = "roofline"
ERROR_CHARS = 160
SUMMARY_COLUMNS = (
    "config", "trials", "median", "min", "max", "ci_low", "ci_high",
    "speedup", "roofline_pct", "correct", "status", "is_baseline",
)  # fmt: skip


def correctness_verdict(passed: pd.Series) -> str:
    """``"pass"`` if every checked trial passed, ``"FAIL"`` if any failed, ``"n/a"`` if none was checked."""
    checked = passed.dropna()
    if checked.empty:
        return "n/a"
    return "pass" if bool(checked.all()) else "FAIL"


def status_summary(trials: pd.DataFrame) -> str:
    """``"ok"``, ``"k/n failed"``, or ``"failed: <error>"`` when every trial failed."""
    failed = trials[trials["status"] != "ok"]
    if failed.empty:
        return "ok"
    if len(failed) < len(trials):
        return f"{len(failed)}/{len(trials)} failed"
    errors = [str(e) for e in pd.unique(failed["error"].dropna())] or [str(failed["status"].iloc[0])]
    text = "; ".join(errors)
    return "failed: " + (text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…")


def ok_values(trials: pd.DataFrame, metric: str) -> pd.Series:
    """The metric over the successful trials only."""
    if metric not in trials:
        return pd.Series(dtype=float)
    return trials.loc[trials["status"] == "ok", metric]


def summary_row(trials: pd.DataFrame, metric: str, baseline_values: pd.Series, bootstrap: bool) -> dict:
    values = ok_values(trials, metric)
    low, high = stats.spread(values)
    row = {"trials": len(trials), "median": stats.median(values), "min": low, "max": high}
    if bootstrap:
        row["ci_low"], row["ci_high"] = stats.bootstrap_median_ci(values)
    row["speedup"] = stats.speedup(values, baseline_values, stats.lower_is_better(metric))
    if ROOFLINE_METRIC in trials and stats.finite_values(trials[ROOFLINE_METRIC]).size:
        row["roofline_pct"] = 100.0 * stats.median(ok_values(trials, ROOFLINE_METRIC))
    row["correct"] = correctness_verdict(trials["correct"])
    row["status"] = status_summary(trials)
    return row


def display_name(column: str) -> str:
    """Short switch name, unless it would clash with a summary column."""
    name = short_name(column)
    return column if name in SUMMARY_COLUMNS else name


def build_summary_table(frame: pd.DataFrame, metric: str, baseline: str, bootstrap: bool = False) -> pd.DataFrame:
    """One row per configuration (job order), failed ones included.

    Columns: ``config``, the varying configuration columns (short names), ``trials``, ``median``,
    ``min``, ``max``, [``ci_low``, ``ci_high``], ``speedup`` (ratio of medians vs ``baseline``),
    [``roofline_pct``], ``correct``, ``status``, ``is_baseline``.
    """
    columns = config_columns(frame)
    baseline_values = ok_values(frame[frame["config"] == baseline], metric)
    rows = []
    for label in config_order(frame):
        trials = frame[frame["config"] == label]
        identity = {display_name(c): trials[c].iloc[0] for c in columns}
        summary = summary_row(trials, metric, baseline_values, bootstrap)
        rows.append({"config": label, **identity, **summary, "is_baseline": label == baseline})
    return pd.DataFrame(rows)


def format_number(value: float) -> str:
    """``12345`` for big numbers, ``11.00`` for moderate ones, 3 significant digits below 1."""
    if pd.isna(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def format_speedup(value: float, is_baseline: bool) -> str:
    text = "n/a" if pd.isna(value) else f"{value:.2f}x"
    return f"{text} (baseline)" if is_baseline else text


def format_range(low: float, high: float) -> str:
    return "n/a" if pd.isna(low) else f"{format_number(low)}–{format_number(high)}"


def format_summary_table(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Display strings: configuration columns, trials, median, min–max, [95% CI], speedup, ..."""
    identity = [c for c in table.columns if c not in SUMMARY_COLUMNS] or ["config"]
    shown = pd.DataFrame({c: table[c].map(format_value) for c in identity})
    shown["trials"] = table["trials"].astype(str)
    shown[f"{metric} (median)"] = table["median"].map(format_number)
    shown["min–max"] = [format_range(lo, hi) for lo, hi in zip(table["min"], table["max"])]
    if "ci_low" in table:
        shown["95% CI"] = [format_range(lo, hi) for lo, hi in zip(table["ci_low"], table["ci_high"])]
    shown["speedup"] = [format_speedup(s, b) for s, b in zip(table["speedup"], table["is_baseline"])]
    if "roofline_pct" in table:
        shown["% roofline"] = table["roofline_pct"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.1f}%")
    shown["correct"] = table["correct"]
    shown["status"] = table["status"]
    return shown


def escape_markdown(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def pipe_table(table: pd.DataFrame) -> str:
    """A GitHub pipe table, for when ``tabulate`` is not installed."""
    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def to_markdown(table: pd.DataFrame) -> str:
    """Markdown of a table of display strings (tabulate if installed, else :func:`pipe_table`)."""
    cells = table.map(escape_markdown)
    if importlib.util.find_spec("tabulate") is None:
        return pipe_table(cells)
    return cells.to_markdown(index=False, disable_numparse=True)


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "|": r"\textbar{}",
    "–": "--", "…": "...",
}  # fmt: skip


def escape_latex(text: object) -> str:
    """Plain text made safe for LaTeX (specials escaped, en dash as ``--``)."""
    return "".join(LATEX_SPECIALS.get(char, char) for char in str(text))


def to_latex(table: pd.DataFrame, caption: str | None = None) -> str:
    """A LaTeX ``table`` (booktabs rules) via pandas Styler; cells, headers and caption are escaped."""
    escaped = table.map(escape_latex).rename(columns=escape_latex)
    styler = escaped.style.hide(axis="index")
    return styler.to_latex(hrules=True, caption=caption and escape_latex(caption), position_float="centering")


def write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path


def write_markdown(table: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`to_markdown` of a display table to ``path``."""
    return write_text(to_markdown(table), path)


def write_latex(table: pd.DataFrame, path: str | Path, caption: str | None = None) -> Path:
    """Write :func:`to_latex` of a display table to ``path``."""
    return write_text(to_latex(table, caption), path)
