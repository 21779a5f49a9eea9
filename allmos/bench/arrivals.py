"""When each request of a serving workload arrives: seconds after the run starts, drawn from a seed.

As `vllm bench serve`: the gaps between arrivals are gamma-distributed with shape `burstiness`
and mean 1/rate (burstiness 1 is a Poisson process; below 1 burstier, above 1 more even), then
rescaled so that the last request arrives at num_requests / rate, so every seed offers the same
mean rate. `constant` spaces requests exactly 1/rate apart. An infinite rate sends all at once.
"""

from __future__ import annotations

import math

import numpy as np

ARRIVALS = ("poisson", "gamma", "constant")


def arrival_times(n: int, rate: float, arrival: str, burstiness: float, rng: np.random.Generator) -> list[float]:
    """`n` non-decreasing arrival times in seconds (the first after one gap, as vLLM's)."""
    if math.isinf(rate):
        return [0.0] * n
    if arrival == "constant":
        return [(i + 1) / rate for i in range(n)]
    shape = 1.0 if arrival == "poisson" else burstiness
    gaps = rng.gamma(shape=shape, scale=1.0 / (rate * shape), size=n)
    times = np.cumsum(gaps)
    times *= (n / rate) / times[-1]
    return times.tolist()
