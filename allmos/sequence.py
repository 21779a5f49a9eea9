"""A request as the engine sees it: its tokens, its KV blocks and how far it has been computed."""

from __future__ import annotations

import enum

from allmos.sampling_params import SamplingParams


class SequenceStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class Sequence:
    def __init__(
        self, seq_id: int, token_ids: list[int], params: SamplingParams, arrival: float = 0.0, priority: int = 0
    ):
        self.seq_id = seq_id
        self.token_ids = list(token_ids)
        self.num_prompt_tokens = len(token_ids)
        self.params = params
        self.status = SequenceStatus.WAITING
        self.block_table: list[int] = []
        self.num_computed_tokens = 0
        self.num_cached_tokens = 0  # prompt tokens whose KV came from the prefix cache
        self.num_hashed_blocks = 0  # leading full blocks whose hash is registered
        self.block_hashes: list[int] = []
        self.arrival = arrival
        self.priority = priority  # scheduler.policy=priority: lower is served sooner (as vLLM)
        self.first_token_time: float | None = None
        self.finish_time: float | None = None
        self.token_times: list[float] = []  # when each output token was read back (for inter-token latency)
        self.priority = priority  # what scheduler.policy=priority reads (a workload assigns it)
        self.num_preemptions = 0
        self.top_logprobs: list[list[tuple[int, float]]] = []  # per output token, when asked for
        self.error: str | None = None  # why a step failed for it (it was then finished and removed)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def num_uncomputed_tokens(self) -> int:
        return len(self.token_ids) - self.num_computed_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is SequenceStatus.FINISHED

    def num_blocks_for(self, num_tokens: int, block_size: int) -> int:
        return (num_tokens + block_size - 1) // block_size

    def block_tokens(self, index: int, block_size: int) -> list[int]:
        return self.token_ids[index * block_size : (index + 1) * block_size]
