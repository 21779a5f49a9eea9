"""The per-configuration summary: median, spread, noise, speedup with its interval and verdict.

Numbers stay numeric here (for tests and plots); :mod:`analysis.tables` turns them into text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from analysis import stats
from analysis.labels import settings
from analysis.records import PROBE_FIGURES, PROBE_PREFIX, config_order

ROOFLINE_METRIC = "roofline"
ERROR_CHARS = 160
SUMMARY_COLUMNS = (
    "config", "baseline", "trials", "ok_trials", "values", "median", "min", "max", "cv", "noisy",
    "speedup", "ci_low", "ci_high", "verdict", "significant", "roofline_pct", "correct",
    *(PROBE_PREFIX + f for f in PROBE_FIGURES), "status", "is_baseline",
)  # fmt: skip
LOWER_IS_CLOSER = ("mean_abs_logprob_diff",)  # probe figures where a larger value is further from the reference


def correctness_verdict(verdicts: pd.Series) -> str:
    """``"FAIL"`` if any trial's probe failed, ``"pass"`` if the checked ones passed, ``"reference"`` if every
    probe ran the reference's own configuration (nothing compared), ``"n/a"`` if none was checked."""
    checked = set(verdicts.dropna())
    if "fail" in checked:
        return "FAIL"
    if "pass" in checked:
        return "pass"
    return "reference" if "reference" in checked else "n/a"


def probe_figures(trials: pd.DataFrame) -> dict[str, float]:
    """An approximate configuration's probe figures, the worst over its trials (NaN for exact ones)."""
    out = {}
    for figure in PROBE_FIGURES:
        values = stats.finite_values(trials[PROBE_PREFIX + figure]) if PROBE_PREFIX + figure in trials else []
        worst = max if figure in LOWER_IS_CLOSER else min
        out[PROBE_PREFIX + figure] = float(worst(values)) if len(values) else float("nan")
    return out


def status_summary(trials: pd.DataFrame) -> str:
    """``"ok"``; ``"k/n failed"`` and ``"j/n interrupted"`` (counted apart); or ``"failed: <error>"``
    (``"interrupted: ..."``) when no trial succeeded."""
    failed = trials[trials["status"] != "ok"]
    if failed.empty:
        return "ok"
    kinds = failed["status"].map(lambda s: "interrupted" if s == "interrupted" else "failed")
    if len(failed) < len(trials) or kinds.nunique() > 1:
        return ", ".join(f"{n}/{len(trials)} {kind}" for kind, n in kinds.value_counts(sort=False).items())
    errors = [str(e) for e in pd.unique(failed["error"].dropna())] or [str(failed["status"].iloc[0])]
    text = "; ".join(errors)
    return f"{kinds.iloc[0]}: " + (text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…")


def ok_values(trials: pd.DataFrame, metric: str) -> pd.Series:
    """The metric over the successful trials only."""
    if metric not in trials:
        return pd.Series(dtype=float)
    return trials.loc[trials["status"] == "ok", metric]


def comparison(values: pd.Series, base_values: pd.Series, metric: str) -> dict:
    """Speedup (ratio of medians, oriented so above 1 is better), its interval and verdict."""
    lower = stats.lower_is_better(metric)
    low, high = stats.ratio_interval(values, base_values, lower)
    verdict = stats.verdict(low, high)
    return {
        "speedup": stats.speedup(values, base_values, lower),
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict,
        "significant": verdict in ("faster", "slower"),
    }


def summary_row(trials: pd.DataFrame, metric: str, base_values: pd.Series | None) -> dict:
    values = ok_values(trials, metric)
    finite = stats.finite_values(values)
    low, high = stats.spread(values)
    cv = stats.coefficient_of_variation(values)
    row = {"trials": len(trials), "ok_trials": int(finite.size), "values": list(finite)}
    row |= {"median": stats.median(values), "min": low, "max": high, "cv": cv, "noisy": bool(cv > stats.NOISY_CV)}
    if base_values is None:
        row |= {"speedup": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                "verdict": "no baseline", "significant": False}  # fmt: skip
    else:
        row |= comparison(values, base_values, metric)
    if ROOFLINE_METRIC in trials and stats.finite_values(trials[ROOFLINE_METRIC]).size:
        row["roofline_pct"] = 100.0 * stats.median(ok_values(trials, ROOFLINE_METRIC))
    row["correct"] = correctness_verdict(trials["probe"])
    row |= probe_figures(trials)
    row["status"] = status_summary(trials)
    return row


def build_summary_table(
    frame: pd.DataFrame, metric: str, baselines: str | Mapping[str, str | None], extras: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per configuration (job order), failed ones included, each compared with its baseline
    (one label for all, or ``{config: baseline}``). ``extras`` are more columns shown as medians."""
    order = config_order(frame)
    of = dict.fromkeys(order, baselines) if isinstance(baselines, str) else dict(baselines)
    rows = []
    for label in order:
        trials = frame[frame["config"] == label]
        base = of.get(label)
        base_values = None if base is None else ok_values(frame[frame["config"] == base], metric)
        row = {"config": label, "baseline": base, **summary_row(trials, metric, base_values)}
        row |= {extra: stats.median(ok_values(trials, extra)) for extra in extras}
        if label == base:  # itself: 1.00 by definition, no interval and no verdict
            row |= {"ci_low": float("nan"), "ci_high": float("nan"), "verdict": "baseline", "significant": False}
        rows.append(row | {"is_baseline": label == base})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- A/A noise floor


def aa_pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs of configurations with identical settings under different names (a repeated baseline
    point such as ``all_on`` and ``all_on_again``): their ratio is the run-to-run noise floor."""
    order = config_order(frame)
    by_settings: dict[tuple, list[str]] = {}
    for label in order:
        by_settings.setdefault(tuple(sorted(settings(frame, label).items())), []).append(label)
    return [(labels[0], other) for labels in by_settings.values() for other in labels[1:]]


def aa_floor(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per A/A pair: ``a``, ``b``, ratio b/a (oriented like a speedup), interval, verdict."""
    return pair_table(frame, aa_pairs(frame), metric)


def stated_pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(reference, configuration) for each point whose file states another point it is compared with
    (``experiment.compared_with``), where that point is in the sweep."""
    if "compared_with" not in frame or "point" not in frame:
        return []
    firsts = frame.drop_duplicates("config")
    label_of = {str(p): c for p, c in zip(firsts["point"], firsts["config"]) if not pd.isna(p)}
    stated = firsts.dropna(subset=["compared_with"])
    return [(label_of[str(r)], c) for r, c in zip(stated["compared_with"], stated["config"]) if str(r) in label_of]


def stated_comparisons(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per stated pair, as aa_floor: ``a`` the reference, ``b`` the point, ratio b/a, verdict."""
    return pair_table(frame, stated_pairs(frame), metric)


def pair_table(frame: pd.DataFrame, pairs: list[tuple[str, str]], metric: str) -> pd.DataFrame:
    rows = []
    for a, b in pairs:
        values_a = ok_values(frame[frame["config"] == a], metric)
        values_b = ok_values(frame[frame["config"] == b], metric)
        rows.append({"a": a, "b": b, **comparison(values_b, values_a, metric)})
    return pd.DataFrame(rows, columns=["a", "b", "speedup", "ci_low", "ci_high", "verdict", "significant"])
