"""Per-request latencies and their summaries: TTFT, TPOT, ITL and end-to-end, each at mean, std,
p50, p90 and p99 (numpy's linear-interpolation percentiles, as `vllm bench serve`), request
throughput, goodput under the SLOs, and the peaks of concurrency and output rate.

TTFT and end-to-end count from each request's arrival (when it was due); ITL is every gap
between consecutive output tokens of a request, pooled over requests; TPOT is a request's
(finish - first token) / (output tokens - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allmos.bench.driver import Served
from allmos.bench.slo import Slo

PERCENTILES = (50, 90, 99)
MS = 1e3


@dataclass
class RequestLatency:
    ttft_ms: float | None
    tpot_ms: float | None  # None with fewer than two output tokens
    e2e_ms: float | None
    met_slo: bool | None  # None when no SLO is set


def request_latency(served: Served, slo: Slo) -> RequestLatency:
    s = served.seq
    ttft = None if s.first_token_time is None else (s.first_token_time - s.arrival) * MS
    e2e = None if s.finish_time is None else (s.finish_time - s.arrival) * MS
    tpot = None
    if s.finish_time is not None and s.first_token_time is not None and s.num_output_tokens > 1:
        tpot = (s.finish_time - s.first_token_time) * MS / (s.num_output_tokens - 1)
    met = slo.met(ttft, tpot, e2e) if slo.judged else None
    return RequestLatency(ttft, tpot, e2e, met)


def summary(name: str, values: list[float]) -> dict:
    """`<name>_mean`, `_std`, `_p50`, `_p90`, `_p99` (None when there are no values)."""
    keys = [f"{name}_mean", f"{name}_std"] + [f"{name}_p{p}" for p in PERCENTILES]
    if not values:
        return dict.fromkeys(keys)
    array = np.asarray(values, dtype=np.float64)
    stats = [array.mean(), array.std()] + [np.percentile(array, p) for p in PERCENTILES]
    return {key: float(v) for key, v in zip(keys, stats)}


def inter_token_ms(served: list[Served]) -> list[float]:
    return [gap * MS for s in served for gap in np.diff(s.seq.token_times).tolist()]


def latency_metrics(served: list[Served], slo: Slo, wall: float) -> dict:
    rows = [request_latency(s, slo) for s in served]
    ttft = [r.ttft_ms for r in rows if r.ttft_ms is not None]
    tpot = [r.tpot_ms for r in rows if r.tpot_ms is not None]
    e2e = [r.e2e_ms for r in rows if r.e2e_ms is not None]
    completed = sum(s.seq.finish_time is not None and s.seq.error is None for s in served)
    good = sum(bool(r.met_slo) for r in rows)
    out = {
        "num_requests": completed,
        "request_s": completed / wall,
        "goodput_req_s": good / wall if slo.judged else None,
        "slo_attainment": good / len(rows) if slo.judged and rows else None,
        # the keys earlier records have (the tables and the summary read them)
        "ttft_ms_median": float(np.median(ttft)) if ttft else None,
        "ttft_ms_max": max(ttft, default=None),
        "tpot_ms_median": float(np.median(tpot)) if tpot else None,
    }
    out |= summary("ttft_ms", ttft) | summary("tpot_ms", tpot) | summary("itl_ms", inter_token_ms(served))
    return out | summary("e2e_ms", e2e) | peaks(served)


def peaks(served: list[Served]) -> dict:
    """The most requests in the engine at once, and the most output tokens within one second (seconds
    counted from the first admission), as vLLM's max_concurrent_requests and max_output_tokens_per_s."""
    events = sorted(
        [(s.admitted, 1) for s in served] + [(s.seq.finish_time, -1) for s in served if s.seq.finish_time],
        key=lambda e: (e[0], e[1]),  # a finish before an admission at the same instant
    )
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    times = np.asarray([t for s in served for t in s.seq.token_times])
    origin = min((s.admitted for s in served), default=0.0)
    per_second = np.bincount((times - origin).astype(np.int64)) if times.size else np.zeros(1)
    return {"peak_concurrent_requests": peak, "peak_output_tok_s": float(per_second.max())}


REQUEST_COLUMNS = (
    "request", "seq_id", "priority", "arrival_s", "admitted_s", "first_token_s", "finish_s",
    "prompt_tokens", "cached_prompt_tokens", "output_tokens", "preemptions", "ttft_ms", "tpot_ms", "e2e_ms", "met_slo",
)  # fmt: skip


def request_rows(served: list[Served], start: float, slo: Slo) -> list[dict]:
    """One row per request (requests.csv), times in seconds after the run's start, in workload order."""

    def since_start(t: float | None) -> float | None:
        return None if t is None else t - start

    rows = []
    for s in sorted(served, key=lambda s: s.index):
        seq, latency = s.seq, request_latency(s, slo)
        times = [since_start(t) for t in (seq.arrival, s.admitted, seq.first_token_time, seq.finish_time)]
        counts = [seq.num_prompt_tokens, seq.num_cached_tokens, seq.num_output_tokens, seq.num_preemptions]
        measured = [latency.ttft_ms, latency.tpot_ms, latency.e2e_ms, latency.met_slo]
        rows.append(dict(zip(REQUEST_COLUMNS, [s.index, seq.seq_id, s.priority, *times, *counts, *measured])))
    return rows
