"""Summary statistics over trials. Pure functions; NaN, None and infinities are ignored."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd


def finite_values(values: Iterable[object]) -> np.ndarray:
    """The finite numbers among ``values`` as a float array (non-numbers dropped)."""
    numbers = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=float)
    return numbers[np.isfinite(numbers)]


def median(values: Iterable[object]) -> float:
    """Median of the finite values; NaN when there are none."""
    x = finite_values(values)
    return float(np.median(x)) if x.size else float("nan")


def spread(values: Iterable[object]) -> tuple[float, float]:
    """(min, max) of the finite values; (NaN, NaN) when there are none."""
    x = finite_values(values)
    return (float(x.min()), float(x.max())) if x.size else (float("nan"), float("nan"))


def bootstrap_median_ci(
    values: Iterable[object], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median, reproducible through ``seed``."""
    x = finite_values(values)
    if not x.size:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(x, size=(resamples, x.size), replace=True), axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(medians, [tail, 1.0 - tail])
    return float(low), float(high)


TIME_PATTERN = re.compile(r"_(s|ms|us)(_(median|mean|std|max|min|p\d+))?$")  # wall_s, tpot_ms_median, ttft_ms_p99
RATE_PATTERN = re.compile(r"(tok|req|gb|tb|_per)_s$|^request_s$")  # output_tok_s, goodput_req_s, request_s
COST_PATTERN = re.compile(r"^energy_j|_per_output_token$|_power_w")  # energy_j, gpu_power_w_mean: spent


def lower_is_better(metric: str) -> bool:
    """Times (``wall_s``, ``decode_s``, ``tpot_ms_median``, ``ttft_ms_max``) and what a run spends
    (``energy_j``, ``energy_j_per_output_token``, ``gpu_power_w_mean``) improve downwards; rates
    (``output_tok_s``, ``request_s``, ``goodput_req_s``, ``..._gb_s``) and everything else upwards."""
    if COST_PATTERN.search(metric):
        return True
    return bool(TIME_PATTERN.search(metric)) and not RATE_PATTERN.search(metric)


def speedup(values: Iterable[object], baseline_values: Iterable[object], lower_better: bool = False) -> float:
    """Ratio of medians (never a mean of ratios): ``median(values) / median(baseline_values)`` for a
    rate, the inverse for a time, so that above 1 always means faster than the baseline."""
    base, value = median(baseline_values), median(values)
    if not (base and np.isfinite(base)):
        return float("nan")
    if lower_better:
        return base / value if value else float("nan")
    return value / base


# --------------------------------------------------------------------------- intervals and noise

MIN_TRIALS_FOR_INTERVAL = 3
NOISY_CV = 0.05  # a configuration whose trials' coefficient of variation exceeds this is flagged noisy
INTERVAL_METHOD = (
    "95% Welch t interval of the ratio of geometric means (t test on log values, each configuration's "
    f"trials as independent samples; needs >= {MIN_TRIALS_FOR_INTERVAL} trials on both sides)"
)
# two-sided 95% t quantiles by degrees of freedom; between rows the smaller df is used (conservative)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
       10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000,
       120: 1.980}  # fmt: skip
Z95 = 1.960


def t95(df: float) -> float:
    """Two-sided 95% quantile of Student's t at ``df`` degrees of freedom (rounded down to the table)."""
    if not np.isfinite(df):
        return Z95
    rows = [k for k in T95 if k <= df]
    return T95[max(rows)] if rows else T95[1]


def coefficient_of_variation(values: Iterable[object]) -> float:
    """Sample standard deviation over mean of the finite values; NaN with fewer than 2."""
    x = finite_values(values)
    if x.size < 2 or not x.mean():
        return float("nan")
    return float(x.std(ddof=1) / abs(x.mean()))


def ratio_interval(
    values: Iterable[object], baseline_values: Iterable[object], lower_better: bool = False
) -> tuple[float, float]:
    """95% interval of the speedup (see :data:`INTERVAL_METHOD`), oriented like :func:`speedup`.

    (NaN, NaN) when either side has fewer than :data:`MIN_TRIALS_FOR_INTERVAL` positive values.
    """
    a, b = finite_values(values), finite_values(baseline_values)
    a, b = a[a > 0], b[b > 0]
    if min(a.size, b.size) < MIN_TRIALS_FOR_INTERVAL:
        return float("nan"), float("nan")
    la, lb = np.log(a), np.log(b)
    va, vb = la.var(ddof=1) / la.size, lb.var(ddof=1) / lb.size
    diff, se = la.mean() - lb.mean(), float(np.sqrt(va + vb))
    if lower_better:
        diff = -diff
    if se == 0.0:
        return float(np.exp(diff)), float(np.exp(diff))
    df = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1))
    half = t95(df) * se
    return float(np.exp(diff - half)), float(np.exp(diff + half))


def verdict(low: float, high: float) -> str:
    """``faster`` / ``slower`` when the interval excludes 1, ``no difference`` when it holds 1,
    ``no spread`` when there is no interval (too few trials)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no spread"
    if low > 1.0:
        return "faster"
    if high < 1.0:
        return "slower"
    return "no difference"
