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


def speedup(values: Iterable[object], baseline_values: Iterable[object]) -> float:
    """Ratio of medians, ``median(values) / median(baseline_values)`` (never a mean of ratios)."""
    base = median(baseline_values)
    return median(values) / base if base and np.isfinite(base) else float("nan")
