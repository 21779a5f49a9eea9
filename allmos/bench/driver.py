"""The arrival-driven harness: each request reaches the engine at its arrival time.

Requests not yet due are held here, invisible to the scheduler; the loop hands each one to the
engine when its time comes (and, with `max_concurrency`, a slot is free), steps the engine
meanwhile, and sleeps only when nothing is running. A request's `arrival` is when it was due, not
when it was handed over, so TTFT counts every wait: the engine's queue, a step that ran past the
arrival, and a full `max_concurrency`, as a client would see it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from allmos.bench.workloads import Request
from allmos.sequence import Sequence


@dataclass
class Served:
    index: int  # the request's position in the workload
    seq: Sequence
    admitted: float  # when it was handed to the engine (perf_counter seconds)
    priority: int


def serve(
    engine,
    requests: list[Request],
    start: float,
    max_concurrency: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    bar=None,
) -> list[Served]:
    """Run `requests` (in arrival order, `arrival_s` after `start`) to completion; `bar` counts finished ones."""
    pending = deque(enumerate(requests))
    served: list[Served] = []
    in_flight = 0
    while pending or engine.has_unfinished():
        now = clock()
        while pending and start + pending[0][1].arrival_s <= now and has_slot(in_flight, max_concurrency):
            index, request = pending.popleft()
            served.append(admit(engine, index, request, start, now))
            in_flight += 1
        if engine.has_unfinished():
            finished = len(engine.step())
            in_flight -= finished
            if bar is not None and finished:
                bar.update(finished)
        elif pending:
            sleep(max(0.0, start + pending[0][1].arrival_s - clock()))
    return served


def has_slot(in_flight: int, max_concurrency: int | None) -> bool:
    return max_concurrency is None or in_flight < max_concurrency


def admit(engine, index: int, request: Request, start: float, now: float) -> Served:
    priority = request.priority or 0
    seq = engine.add_request(request.token_ids, request.params, priority=priority)
    seq.arrival = start + request.arrival_s  # when it was due: TTFT includes the wait before admission
    return Served(index, seq, now, priority)
