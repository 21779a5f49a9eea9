"""The per-configuration summary table, and its Markdown and LaTeX renderings.

:func:`analysis.summary.build_summary_table` keeps numbers numeric; :func:`format_summary_table`
turns them into display strings; :func:`to_markdown` / :func:`to_latex` render those (a significant
speedup in bold; numeric LaTeX columns right-aligned between booktabs rules).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import stats
from analysis.labels import changes, has_points
from analysis.records import PROBE_PREFIX, config_columns, format_value, short_name

NA = "n/a"


@dataclass
class Display:
    """A summary table as text: ``table`` of strings, the rows whose speedup is significant
    (bold), and the columns that hold numbers (right-aligned in LaTeX)."""

    table: pd.DataFrame
    significant: list[bool] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)


def format_number(value: float) -> str:
    """``12345`` for big numbers, ``11.00`` for moderate ones, 3 significant digits below 1."""
    if pd.isna(value):
        return NA
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def format_range(low: float, high: float) -> str:
    return NA if pd.isna(low) else f"{format_number(low)}–{format_number(high)}"


def format_speedup(row: pd.Series) -> str:
    if row["is_baseline"]:
        return "1.00x (baseline)"
    if pd.isna(row["speedup"]):
        return NA
    text = f"{row['speedup']:.2f}x"
    return text + " (no spread)" if row["verdict"] == "no spread" else text


def format_interval(low: float, high: float) -> str:
    return NA if pd.isna(low) else f"[{low:.2f}, {high:.2f}]"


def format_verdict(row: pd.Series) -> str:
    if row["is_baseline"]:
        return "baseline"
    if pd.isna(row["median"]):
        return "no result"
    if row["verdict"] == "no spread":
        return f"no spread (n<{stats.MIN_TRIALS_FOR_INTERVAL})"
    return row["verdict"] + ("*" if row["significant"] else "")


def format_cv(cv: float, noisy: bool) -> str:
    return NA if pd.isna(cv) else f"{100 * cv:.1f}%" + (" noisy" if noisy else "")


def format_trials(row: pd.Series) -> str:
    return str(row["trials"]) if row["ok_trials"] == row["trials"] else f"{row['ok_trials']}/{row['trials']}"


def format_extra(column: str, value: float) -> str:
    if pd.isna(value):
        return NA
    if column.endswith(("_rate", "_share")):
        return f"{100 * value:.1f}%"
    return f"{value:.0f}" if float(value).is_integer() else format_number(value)


def extra_title(column: str) -> str:
    return short_name(column.removeprefix("counter.")).replace("_", " ")


# An approximate configuration's probe figures beside its verdict: (record figure, title, format)
ACCURACY_COLUMNS = (
    ("top1_agreement", "top-1 agree", lambda v: f"{100 * v:.1f}%"),
    ("top5_containment", "top-5 contained", lambda v: f"{100 * v:.1f}%"),
    ("mean_abs_logprob_diff", "mean abs Δlogprob", lambda v: f"{v:.3f}"),  # no "|": it would split a Markdown header
)


def accuracy_columns(table: pd.DataFrame) -> dict[str, list[str]]:
    """The probe figures as text, n/a for exact configurations."""
    return {
        title: [NA if pd.isna(v) else show(v) for v in table.get(PROBE_PREFIX + figure, [float("nan")] * len(table))]
        for figure, title, show in ACCURACY_COLUMNS
    }


def droppable(column: pd.Series) -> bool:
    """All n/a, or the same in every row of a table of several rows."""
    cells = column.astype(str)
    return bool((cells == NA).all()) or (len(cells) > 1 and cells.nunique() == 1)


def identity_columns(frame: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Point names and what each changes vs its baseline; else the switches that vary."""
    if has_points(frame):
        return pd.DataFrame({
            "point": table["config"],
            "changes": [changes(frame, c, b) for c, b in zip(table["config"], table["baseline"])],
        })  # fmt: skip
    columns = config_columns(frame)
    if not columns:
        return pd.DataFrame({"config": table["config"]})
    firsts = frame.drop_duplicates("config").set_index("config")
    labels = table["config"]
    return pd.DataFrame({short_name(c): [format_value(firsts.at[label, c]) for label in labels] for c in columns})


def format_summary_table(
    table: pd.DataFrame, metric: str, frame: pd.DataFrame | None = None, extras: Sequence[str] = ()
) -> Display:
    """Display strings; constant and all-n/a columns other than the measurements are dropped."""
    shown = identity_columns(frame, table) if frame is not None else pd.DataFrame({"config": table["config"]})
    kept = list(shown.columns)
    shown["trials"] = [format_trials(row) for _, row in table.iterrows()]
    shown[f"{metric} (median)"] = table["median"].map(format_number)
    spreads = zip(table["min"], table["max"], table["ok_trials"])
    shown["min–max"] = [format_range(lo, hi) if n > 1 else NA for lo, hi, n in spreads]
    shown["CV"] = [format_cv(cv, noisy) for cv, noisy in zip(table["cv"], table["noisy"])]
    shown["speedup"] = [format_speedup(row) for _, row in table.iterrows()]
    shown["95% CI"] = [format_interval(lo, hi) for lo, hi in zip(table["ci_low"], table["ci_high"])]
    shown["verdict"] = [format_verdict(row) for _, row in table.iterrows()]
    for extra in extras:
        shown[extra_title(extra)] = [format_extra(extra, v) for v in table[extra]]
    if "roofline_pct" in table:
        shown["% roofline"] = table["roofline_pct"].map(lambda v: NA if pd.isna(v) else f"{v:.1f}%")
    shown["correct"] = table["correct"]
    accuracy = accuracy_columns(table)
    for title, cells in accuracy.items():
        shown[title] = cells
    shown["status"] = table["status"]
    optional = kept[1:] + ["CV", "95% CI", "% roofline", "correct"]  # measurements asked for stay
    dropped = [c for c in optional if c in shown and droppable(shown[c])]
    dropped += [title for title, cells in accuracy.items() if all(cell == NA for cell in cells)]  # exact only
    dropped += ["status"] if (table["status"] == "ok").all() else []
    shown = shown.drop(columns=dropped)
    numeric = [c for c in shown if c in NUMERIC_TITLES or c.endswith("(median)") or c in map(extra_title, extras)]
    return Display(shown.reset_index(drop=True), list(table["significant"] & ~table["is_baseline"]), numeric)


NUMERIC_TITLES = ("trials", "min–max", "CV", "speedup", "95% CI", "% roofline", *(t for _, t, _ in ACCURACY_COLUMNS))


def escape_markdown(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def pipe_table(table: pd.DataFrame) -> str:
    """A GitHub pipe table, for when ``tabulate`` is not installed."""
    header = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def bolded(display: Display, bold: Callable[[str], str]) -> pd.DataFrame:
    """The table with the speedup cell of each significant row wrapped by ``bold``."""
    table = display.table.copy()
    if "speedup" in table:
        flags = display.significant or [False] * len(table)
        table["speedup"] = [bold(cell) if flag else cell for cell, flag in zip(table["speedup"], flags)]
    return table


def to_markdown(display: Display | pd.DataFrame) -> str:
    """Markdown of a display table (tabulate if installed, else :func:`pipe_table`); significant
    speedups in bold."""
    display = display if isinstance(display, Display) else Display(display)
    cells = bolded(Display(display.table.map(escape_markdown), display.significant), lambda c: f"**{c}**")
    if importlib.util.find_spec("tabulate") is None:
        return pipe_table(cells)
    return cells.to_markdown(index=False, disable_numparse=True)


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "|": r"\textbar{}",
    "–": "--", "…": "...", "×": r"$\times$", "Δ": r"$\Delta$",
}  # fmt: skip


def escape_latex(text: object) -> str:
    """Plain text made safe for LaTeX (specials escaped, en dash as ``--``)."""
    return "".join(LATEX_SPECIALS.get(char, char) for char in str(text))


def to_latex(display: Display | pd.DataFrame, caption: str | None = None) -> str:
    """A LaTeX ``table``: booktabs rules, numeric columns right-aligned (``r``), text ones ``l``,
    significant speedups in bold; cells, headers and caption escaped."""
    display = display if isinstance(display, Display) else Display(display)
    escaped = Display(display.table.map(escape_latex), display.significant)
    cells = bolded(escaped, lambda c: rf"\textbf{{{c}}}")
    spec = "".join("r" if column in display.numeric else "l" for column in cells.columns)
    lines = [r"\begin{table}", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{escape_latex(caption)}}}")
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(map(escape_latex, cells.columns)) + r" \\"]
    lines.append(r"\midrule")
    lines += [" & ".join(map(str, row)) + r" \\" for row in cells.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path
