"""Service-level objectives: the top-level `slo:` block. A request is good when it meets every SLO
that is set (null ones are not judged); goodput is good requests per second of the run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

from allmos.errors import ConfigError
from allmos.requests import is_real


@dataclass
class Slo:
    ttft_ms: Optional[float] = None  # time to first token, from the request's arrival
    tpot_ms: Optional[float] = None  # time per output token after the first
    e2e_ms: Optional[float] = None  # arrival to last token

    @property
    def judged(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def met(self, ttft_ms: float | None, tpot_ms: float | None, e2e_ms: float | None) -> bool:
        """As `vllm bench serve --goodput`: a request of one output token has no TPOT, which counts as 0."""
        measured = {"ttft_ms": ttft_ms, "tpot_ms": tpot_ms or 0.0, "e2e_ms": e2e_ms}
        return all(
            limit is None or (measured[key] is not None and measured[key] <= limit)
            for key, limit in asdict(self).items()
        )


def checked_slo(values: dict | None) -> dict:
    """The slo block's values, each null or a finite number of milliseconds above 0."""
    slo = Slo(**(values or {}))
    for key, value in asdict(slo).items():
        if value is not None and (not is_real(value) or not math.isfinite(value) or value <= 0):
            raise ConfigError(
                f"slo.{key}", f"must be null (not judged) or a number of milliseconds above 0, got {value!r}"
            )
    return asdict(slo)
