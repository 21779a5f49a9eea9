"""The words around a report's table: its header (trials, interval method, noise, A/A floor,
baseline, constant settings) and the LaTeX caption."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis import stats
from analysis.baseline import Baselines
from analysis.labels import constant_caption


def trials_line(summary: pd.DataFrame) -> str:
    counts = summary["ok_trials"]
    low, high = int(counts.min()), int(counts.max())
    text = f"{low}" if low == high else f"{low}–{high}"
    few = int((counts < stats.MIN_TRIALS_FOR_INTERVAL).sum())
    minimum = stats.MIN_TRIALS_FOR_INTERVAL
    note = f"; {few} configuration(s) with fewer than {minimum}: no spread, no verdict" if few else ""
    return f"successful trials per configuration: {text}{note}"


def noise_line(summary: pd.DataFrame) -> str:
    cvs = summary.dropna(subset=["cv"])
    if cvs.empty:
        return "noise: not measured (fewer than 2 successful trials per configuration)"
    worst = cvs.loc[cvs["cv"].idxmax()]
    noisy = list(cvs.loc[cvs["noisy"], "config"])
    flagged = ", ".join(noisy) if noisy else "none"
    return (f"noise: coefficient of variation over trials, median {100 * cvs['cv'].median():.1f}%, "
            f"max {100 * worst['cv']:.1f}% ({worst['config']}); "
            f"noisy (CV > {100 * stats.NOISY_CV:.0f}%): {flagged}")  # fmt: skip


def pair_parts(pairs: pd.DataFrame) -> str:
    parts = []
    for _, row in pairs.iterrows():
        low, high = row["ci_low"], row["ci_high"]
        interval = "no spread" if pd.isna(low) else f"95% interval [{low:.3f}, {high:.3f}]"
        parts.append(f"{row['b']} vs {row['a']}: {row['speedup']:.3f}x, {interval}, {row['verdict']}")
    return "; ".join(parts)


def aa_line(aa: pd.DataFrame) -> str:
    if aa.empty:
        return "A/A noise floor: not measured (no repeated baseline point in this sweep)"
    return "A/A noise floor (identical settings under two point names): " + pair_parts(aa)


def stated_line(stated: pd.DataFrame) -> str:
    return "compared as stated by the point (`experiment.compared_with`): " + pair_parts(stated)


def baseline_line(baselines: Baselines) -> str:
    grouped = f", one per {', '.join(baselines.grouped_by)}" if baselines.grouped_by else ""
    return f"baseline: {', '.join(f'`{b}`' for b in baselines.labels) or 'none'} ({baselines.source}{grouped})"


def header_lines(
    title: str,
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    metric: str,
    kind: str | None,
    baselines: Baselines,
    aa: pd.DataFrame,
    stated: pd.DataFrame | None = None,
) -> list[str]:
    failed = int((frame["status"] != "ok").sum())
    direction = "lower is better: speedup = baseline / this" if stats.lower_is_better(metric) else "higher is better"
    return [
        f"# Benchmark report: {title}",
        "",
        f"- experiment kind: {kind or 'not declared (bars only; declare experiment.kind or pass --kind)'}",
        f"- records: {len(frame)} ({failed} failed)",
        f"- {trials_line(summary)}",
        f"- metric: `{metric}` ({direction}); median over successful trials; speedup = ratio of medians",
        f"- interval: {stats.INTERVAL_METHOD}; a speedup is significant (bold, `*`) only when its interval "
        "excludes 1.0",
        f"- {noise_line(summary)}",
        f"- {aa_line(aa)}",
        f"- {baseline_line(baselines)}",
        *([f"- {stated_line(stated)}"] if stated is not None and not stated.empty else []),
        f"- constant: {constant_caption(frame) or 'n/a'}",
    ]


def latex_caption(metric: str, baselines: Baselines, frame: pd.DataFrame) -> str:
    base = ", ".join(baselines.labels) or "none"
    return (f"{metric}: median over trials; speedup vs {base}; 95% interval: Welch t on log values; "
            f"* significant (interval excludes 1). Constant: {constant_caption(frame) or 'n/a'}.")  # fmt: skip


def figure_lines(figures: Sequence[Path], notes: Sequence[str]) -> list[str]:
    lines = ["", "## Figures", ""] + [f"- {note}" for note in notes]
    return lines + [f"![{path.stem}]({path.name})" for path in figures if path.suffix == ".png"]
