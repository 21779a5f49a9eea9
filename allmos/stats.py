"""What a run did, in one owner: the step trace and the counters that prove each switch really acted.

The engine makes one `EngineStats` and hands it to every component it builds (`BuildContext.stats`);
the scheduler, the block manager and the graph runner report into it with `count`, the engine records
each step, and the engine alone resets it (after warm-up) and reads it into the record.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

# What the counters are, in the record's order; a component reports only these names.
COUNTERS = (
    "prompt_tokens",  # prompt tokens of admitted requests
    "prefill_tokens_computed",  # tokens run through prefill (recomputation after preemption included)
    "cached_prompt_tokens",  # prompt tokens whose KV the prefix cache supplied instead
    "graph_forwards",  # forwards replayed from a captured CUDA graph
    "graph_sampled_steps",  # of which the graph also sampled the tokens (cuda_graphs=true, a capturable sampler)
    "eager_forwards",  # forwards run eagerly
    "preemptions",  # running sequences preempted for blocks (recomputed later)
    "ahead_steps",  # steps queued before the previous step's tokens were read back (async scheduling)
    "ahead_prefill_steps",  # of which prefill steps
)


@dataclass(frozen=True)
class StepRecord:
    step: int
    kind: str  # prefill | decode | mixed (scheduler=mixed: decode rows and prompt chunks in one forward)
    batch_size: int
    num_tokens: int
    step_ms: float
    kv_blocks_used: int
    context_tokens: int  # tokens whose KV the step's attention read


@dataclass
class EngineStats:
    trace: list[StepRecord] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    peak_kv_blocks: int = 0

    def count(self, name: str, n: int = 1) -> None:
        if name not in COUNTERS:
            raise KeyError(f"{name!r} is not a counter; the counters are: {', '.join(COUNTERS)}")
        self.counts[name] += n

    def reset(self) -> None:
        """Start afresh, in place: every component keeps reporting into the same owner."""
        self.trace.clear()
        self.counts.clear()
        self.peak_kv_blocks = 0

    def record(
        self,
        kind: str,
        batch_size: int,
        num_tokens: int,
        seconds: float,
        blocks_used: int,
        context_tokens: int,
        prompt_tokens: int,
    ) -> None:
        """One step; `prompt_tokens` of its `num_tokens` are prompt tokens (a mixed step's decode rows are not)."""
        row = StepRecord(len(self.trace), kind, batch_size, num_tokens, seconds * 1e3, blocks_used, context_tokens)
        self.trace.append(row)
        self.peak_kv_blocks = max(self.peak_kv_blocks, blocks_used)
        self.count("prefill_tokens_computed", prompt_tokens)

    def counters(self) -> dict[str, int]:
        return {name: self.counts[name] for name in COUNTERS}

    def seconds(self, kind: str) -> float:
        return sum(r.step_ms for r in self.trace if r.kind == kind) / 1e3

    def steps(self, kind: str) -> int:
        return sum(1 for r in self.trace if r.kind == kind)

    @property
    def prefix_hit_rate(self) -> float:
        """Share of the tokens that needed KV which the prefix cache supplied."""
        cached = self.counts["cached_prompt_tokens"]
        needed = cached + self.counts["prefill_tokens_computed"]
        return cached / needed if needed else 0.0

    def trace_rows(self) -> list[dict]:
        return [asdict(r) for r in self.trace]
