"""The waiting queue: requests that have not started (or were preempted), in the order a scheduling
policy starts them. `fcfs` keeps arrival order with preempted requests back at the front (a deque);
`priority` and `sjf` keep a heap on the policy's rank. Every operation a step makes is O(log n) or
O(1); removing a request from the middle (abort) and iterating in order are O(n) and O(n log n).

One request is special: a prompt that holds the blocks of its whole prompt before it has run stays
first (`hold`) until it is scheduled, whatever arrives meanwhile. That is a prompt part-way through a
chunked prefill, or, without chunking, a whole prompt that reserved its blocks and then did not fit what
was left of a step's budget. Were it passed over, its blocks would sit idle while the request ahead of it
might wait for them.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from allmos.sequence import Sequence


class WaitingQueue(ABC):
    """The held prompt (if any) first, then the policy's order."""

    def __init__(self):
        self.held: Sequence | None = None

    def push(self, seq: Sequence) -> None:
        """A new request."""
        self.insert(seq)

    def requeue(self, seq: Sequence) -> None:
        """A preempted request (its blocks already freed): where the policy puts it back."""
        self.insert(seq)

    def hold(self, seq: Sequence) -> None:
        """`seq`, the head, holds its prompt's blocks: it stays first until popped."""
        if self.held is seq:
            return
        if self.head() is not seq:
            raise RuntimeError(f"sequence {seq.seq_id} is held first but is not the head of the waiting queue")
        self.held = self.pop_first()

    def head(self) -> Sequence:
        return self.held if self.held is not None else self.first()

    def pop_head(self) -> Sequence:
        if self.held is not None:
            seq, self.held = self.held, None
            return seq
        return self.pop_first()

    def remove(self, seq: Sequence) -> None:
        if self.held is seq:
            self.held = None
        else:
            self.discard(seq)

    def __iter__(self) -> Iterator[Sequence]:
        if self.held is not None:
            yield self.held
        yield from self.in_order()

    def __contains__(self, seq: object) -> bool:
        return seq is self.held or any(s is seq for s in self.in_order())

    def __len__(self) -> int:
        return (self.held is not None) + self.size()

    # the policy's store, below the held prompt
    @abstractmethod
    def insert(self, seq: Sequence) -> None: ...

    @abstractmethod
    def first(self) -> Sequence: ...

    @abstractmethod
    def pop_first(self) -> Sequence: ...

    @abstractmethod
    def discard(self, seq: Sequence) -> None: ...

    @abstractmethod
    def in_order(self) -> Iterator[Sequence]: ...

    @abstractmethod
    def size(self) -> int: ...


class ArrivalQueue(WaitingQueue):
    """fcfs: arrival order; a preempted request goes back to the front (it arrived before any waiting
    request that never started)."""

    def __init__(self):
        super().__init__()
        self.queue: deque[Sequence] = deque()

    def insert(self, seq: Sequence) -> None:
        self.queue.append(seq)

    def requeue(self, seq: Sequence) -> None:
        self.queue.appendleft(seq)

    def first(self) -> Sequence:
        return self.queue[0]

    def pop_first(self) -> Sequence:
        return self.queue.popleft()

    def discard(self, seq: Sequence) -> None:
        self.queue.remove(seq)

    def in_order(self) -> Iterator[Sequence]:
        return iter(self.queue)

    def size(self) -> int:
        return len(self.queue)


class RankedQueue(WaitingQueue):
    """A heap on `rank(seq)`, taken when the request is queued (a waiting request's rank does not
    change while it waits: it computes nothing)."""

    def __init__(self, rank: Callable[[Sequence], tuple[Any, ...]]):
        super().__init__()
        self.rank = rank
        self.heap: list[tuple[tuple[Any, ...], Sequence]] = []

    def insert(self, seq: Sequence) -> None:
        heapq.heappush(self.heap, (self.rank(seq), seq))

    def first(self) -> Sequence:
        return self.heap[0][1]

    def pop_first(self) -> Sequence:
        return heapq.heappop(self.heap)[1]

    def discard(self, seq: Sequence) -> None:
        index = next(i for i, (_, s) in enumerate(self.heap) if s is seq)
        self.heap[index] = self.heap[-1]
        self.heap.pop()
        heapq.heapify(self.heap)

    def in_order(self) -> Iterator[Sequence]:
        return (seq for _, seq in sorted(self.heap, key=lambda entry: entry[0]))

    def size(self) -> int:
        return len(self.heap)
