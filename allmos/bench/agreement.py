"""How far an approximate configuration's greedy outputs stray from the all-off reference's.

Each side's output position is a `Step`: the greedy token and the top-k candidates with their
log-probabilities. Once the two greedy streams diverge they condition on different prefixes, so
comparing them position by position after that says nothing. The probe therefore teacher-forces
our side on the reference's tokens by re-anchoring: at each divergence it restarts our greedy
decode from the prompt plus the reference's tokens up to and including the diverging position
(see `take_until_divergence`). Every position of ours is then predicted from the reference's own
prefix, and the positions after a re-anchor are still decode steps that read the (approximate)
KV cache, as in a free run.

Figures over those teacher-forced positions:
- `top1_agreement`: our greedy token equals the reference's (every position), and
  `top1_agreement_after`: the same over the positions after each prompt's first divergence;
- `agreed_prefix`: the share of positions before each prompt's first free-running divergence;
- `top5_containment`: each side's token is among the other side's top-k (k = the probe's TOP);
- `mean_abs_logprob_diff`: |our log-prob - the reference's log-prob| of the reference's greedy
  token, over the positions where our top-k holds it (the others count against top-5 containment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Step:
    token: int
    top: list[int]  # candidate ids, most likely first
    logprobs: list[float]  # their log-probabilities

    def logprob_of(self, token: int) -> float | None:
        return self.logprobs[self.top.index(token)] if token in self.top else None


def steps_of(output: dict) -> list[Step]:
    """A probe output {"tokens", "top", "logprobs"} as steps."""
    return [Step(t, top, lps) for t, top, lps in zip(output["tokens"], output["top"], output["logprobs"])]


def take_until_divergence(run: Sequence[Step], ref: Sequence[Step], anchor: int, forced: list) -> int | None:
    """Place `run` (our greedy steps from reference position `anchor` on, conditioned on the
    reference's tokens before it) into `forced` up to and including its first disagreement with
    `ref`; return the next anchor (one past that position), or None when nothing is left to force."""
    for offset, step in enumerate(run):
        position = anchor + offset
        if position >= len(ref):
            break
        forced[position] = step
        if step.token != ref[position].token:
            return position + 1 if position + 1 < len(ref) else None
    return None


@dataclass(frozen=True)
class Figures:
    top1_agreement: float
    top1_agreement_after: float | None  # None when no prompt diverged
    agreed_prefix: float
    top5_containment: float
    mean_abs_logprob_diff: float | None  # None when no position had the reference's token in our top-k


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def agreement_figures(
    forced: Sequence[Sequence[Step]], refs: Sequence[Sequence[Step]], divergences: Sequence[int | None]
) -> Figures:
    """`forced[p][i]`: our step at position i of prompt p, teacher-forced on `refs[p][:i]`;
    `divergences[p]`: the first position where the free runs differed (None: they never did)."""
    pairs = [(p, i, o, r) for p, (ours, ref) in enumerate(zip(forced, refs)) for i, (o, r) in enumerate(zip(ours, ref))]
    if not pairs:
        raise ValueError("no output positions to compare")
    agree = [o.token == r.token for _, _, o, r in pairs]
    after = [a for a, (p, i, _, _) in zip(agree, pairs) if divergences[p] is not None and i > divergences[p]]
    prefix = sum(len(r) if d is None else d for r, d in zip(refs, divergences)) / sum(map(len, refs))
    contained = [o.token in r.top and r.token in o.top for _, _, o, r in pairs]
    diffs = [abs(o.logprob_of(r.token) - r.logprob_of(r.token)) for _, _, o, r in pairs if r.token in o.top]
    return Figures(mean(agree), mean(after), prefix, mean(contained), mean(diffs))


@dataclass(frozen=True)
class Tolerances:
    top1_agreement_min: float
    top5_containment_min: float
    mean_abs_logprob_diff_max: float

    def reasons(self, figures: Figures) -> list[str]:
        """Why `figures` fall outside the tolerances (empty: within)."""
        out = []
        if figures.top1_agreement < self.top1_agreement_min:
            out.append(f"top-1 agreement {figures.top1_agreement:.1%} < {self.top1_agreement_min:.0%}")
        if figures.top5_containment < self.top5_containment_min:
            out.append(f"top-5 containment {figures.top5_containment:.1%} < {self.top5_containment_min:.0%}")
        diff = figures.mean_abs_logprob_diff
        if diff is None or diff > self.mean_abs_logprob_diff_max:
            shown = "unknown" if diff is None else f"{diff:.3f}"
            out.append(f"mean |Δlogprob| {shown} > {self.mean_abs_logprob_diff_max}")
        return out

    def as_record(self) -> dict:
        return asdict(self)


# The verdict of an approximate switch (e.g. kv_cache_dtype=fp8), over the probe's teacher-forced positions
# (4 prompts x 16 tokens = 64; one position is 1.6%). First measured on CPU with an e4m3 KV cache simulated by
# quantize-dequantize at the store (per-token, per-head or no scale), top-1 / top-5 / mean |dlogprob| in nats:
#   SmolLM2-135M (real weights, fp32)             97% / 100% / 0.049-0.056
#   Qwen3-0.6B (random weights, fp32 and bf16)   100% / 100% / 0.008-0.012
#   qwen3-tiny (init range 0.5, head_dim 16)   86-94% / 98-100% / 0.12-0.13   (the harshest)
#   the tests' tiny qwen3 (vocab 512)             92% / 100% / 0.087-0.093
# while broken caches measured far outside: the scale not applied on read 6% / 6% / -, K/V reduced to their
# signs 9-13% / 9-14% / 0.42-0.90 (e5m2, 2 mantissa bits: SmolLM2 97% / 100% / 0.07, qwen3-tiny 77% / 100% / 0.31).
# The bounds sit below the harshest correct e4m3 measurement, a position or so of slack, and far above the bugs.
APPROXIMATE_TOLERANCES = Tolerances(top1_agreement_min=0.85, top5_containment_min=0.95, mean_abs_logprob_diff_max=0.2)
