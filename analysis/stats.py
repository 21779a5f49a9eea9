"""Summary statistics over trials. Pure functions; NaN, None and infinities are ignored."""

from __future__ import annotations

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


TIME_SUFFIXES = ("_s", "_ms", "_ms_median", "_ms_max")
RATE_SUFFIX = "tok_s"  # output_tok_s: tokens per second


def lower_is_better(metric: str) -> bool:
    """Times (``wall_s``, ``decode_s``, ``tpot_ms_median``, ...) improve downwards; rates upwards."""
    return metric.endswith(TIME_SUFFIXES) and not metric.endswith(RATE_SUFFIX)


def speedup(values: Iterable[object], baseline_values: Iterable[object], lower_better: bool = False) -> float:
    """Ratio of medians (never a mean of ratios): ``median(values) / median(baseline_values)`` for a
    rate, the inverse for a time, so that above 1 always means faster than the baseline."""
    base, value = median(baseline_values), median(values)
    if not (base and np.isfinite(base)):
        return float("nan")
    if lower_better:
        return base / value if value else float("nan")
    return value / base
