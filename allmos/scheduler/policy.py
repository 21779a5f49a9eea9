"""Scheduling policies (`scheduler.policy=fcfs|priority|sjf`): which waiting request starts first, and
which running request is preempted first when KV blocks run out (the one the policy ranks last).

- `fcfs`: arrival order; the most recently admitted running request is preempted first.
- `priority`: the lowest `priority` value first (an int per request, as in vLLM: lower is served
  sooner; default 0), ties in arrival order; the victim has the highest value (ties: the latest).
- `sjf`: the fewest tokens to compute first: a waiting request's length (its prompt, plus what it
  generated before a preemption, since all of it is recomputed); the victim holds the most tokens.

A policy orders; it never preempts a running request for a waiting one. Under `priority` and `sjf` a
request can wait as long as better-ranked ones keep arriving; under `fcfs` none waits forever.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from allmos.errors import ConfigError
from allmos.registry import PluginOptions
from allmos.scheduler.waiting import ArrivalQueue, RankedQueue, WaitingQueue
from allmos.sequence import Sequence


@dataclass
class SchedulerOptions(PluginOptions):
    policy: str = "fcfs"  # fcfs | priority | sjf


class Policy(ABC):
    @abstractmethod
    def waiting_queue(self) -> WaitingQueue: ...

    @abstractmethod
    def order_running(self, running: deque[Sequence]) -> deque[Sequence]:
        """The running requests, best first: a step serves them in this order and preempts from the end."""


class ArrivalOrder(Policy):
    def waiting_queue(self) -> WaitingQueue:
        return ArrivalQueue()

    def order_running(self, running: deque[Sequence]) -> deque[Sequence]:
        return running  # admission order already: the latest admitted is last


class RankOrder(Policy):
    def __init__(self, rank: Callable[[Sequence], tuple[Any, ...]]):
        self.rank = rank

    def waiting_queue(self) -> WaitingQueue:
        return RankedQueue(self.rank)

    def order_running(self, running: deque[Sequence]) -> deque[Sequence]:
        # near-sorted from the last step, so the sort is close to linear
        return deque(sorted(running, key=self.rank))


def priority_rank(seq: Sequence) -> tuple[Any, ...]:
    return (seq.priority, seq.arrival, seq.seq_id)


def shortest_rank(seq: Sequence) -> tuple[Any, ...]:
    return (len(seq), seq.arrival, seq.seq_id)


POLICIES: dict[str, Callable[[], Policy]] = {
    "fcfs": ArrivalOrder,
    "priority": lambda: RankOrder(priority_rank),
    "sjf": lambda: RankOrder(shortest_rank),
}


def check_policy(options: SchedulerOptions) -> None:
    if not isinstance(options, SchedulerOptions):
        raise TypeError(f"a scheduler's options must derive from SchedulerOptions (scheduler.policy), got {options!r}")
    if options.policy not in POLICIES:
        raise ConfigError("scheduler.policy", f"{options.policy!r} is unknown; choose one of: {', '.join(POLICIES)}")


def make_policy(options: SchedulerOptions | None) -> Policy:
    """The policy of `options`; None (a scheduler built by hand, in tests) is the default, fcfs."""
    options = options if options is not None else SchedulerOptions()
    check_policy(options)
    return POLICIES[options.policy]()
