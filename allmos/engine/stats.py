"""What the engine did, step by step, and the counters that prove each switch really acted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
    prompt_tokens: int = 0  # prompt tokens of admitted requests
    prefill_tokens_computed: int = 0  # tokens actually run through prefill (recomputation included)
    cached_prompt_tokens: int = 0  # tokens whose KV came from the prefix cache instead
    peak_kv_blocks: int = 0

    def record(
        self, kind: str, batch_size: int, num_tokens: int, seconds: float, blocks_used: int, context_tokens: int
    ) -> None:
        row = StepRecord(len(self.trace), kind, batch_size, num_tokens, seconds * 1e3, blocks_used, context_tokens)
        self.trace.append(row)
        self.peak_kv_blocks = max(self.peak_kv_blocks, blocks_used)

    def seconds(self, kind: str) -> float:
        return sum(r.step_ms for r in self.trace if r.kind == kind) / 1e3

    def steps(self, kind: str) -> int:
        return sum(1 for r in self.trace if r.kind == kind)

    @property
    def prefix_hit_rate(self) -> float:
        """Share of the tokens that needed KV which the prefix cache supplied."""
        needed = self.cached_prompt_tokens + self.prefill_tokens_computed
        return self.cached_prompt_tokens / needed if needed else 0.0

    def trace_rows(self) -> list[dict]:
        return [asdict(r) for r in self.trace]
