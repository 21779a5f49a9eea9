"""Checks any sampler must pass, given `sample(logits, temperatures) -> tokens` (a fresh draw per call)."""

import math

import torch

VOCAB = 1100  # two 1024-token blocks, the second partial
TARGET = {7: 0.5, 1050: 0.3, 1099: 0.15, 100: 0.05}  # token -> probability


def target_logits(rows: int, temperature: float = 1.0) -> torch.Tensor:
    """Rows whose softmax at `temperature` is TARGET (every other token has probability ~0)."""
    logits = torch.full((rows, VOCAB), -1e4)
    for token, p in TARGET.items():
        logits[:, token] = math.log(p) * temperature
    return logits


def counts(sample, rows: int, draws: int, temperature: float) -> dict[int, int]:
    logits, temps = target_logits(rows, temperature), torch.full((rows,), temperature)
    tokens = torch.cat([sample(logits, temps) for _ in range(draws)])
    values, freq = tokens.unique(return_counts=True)
    return dict(zip(values.tolist(), freq.tolist()))


def check_distribution(sample, rows: int = 64, draws: int = 16, temperature: float = 1.0) -> None:
    """Chi-square over TARGET's tokens: with 3 degrees of freedom, 16.3 is the 0.1% tail."""
    seen = counts(sample, rows, draws, temperature)
    n = rows * draws
    assert set(seen) <= set(TARGET), f"drew tokens of probability ~0: {set(seen) - set(TARGET)}"
    chi2 = sum((seen.get(t, 0) - n * p) ** 2 / (n * p) for t, p in TARGET.items())
    assert chi2 < 16.3, f"frequencies {seen} over {n} draws are far from {TARGET} (chi2 {chi2:.1f})"


def check_greedy(sample) -> None:
    """Temperature 0 is argmax, ties to the lowest id, next to sampled rows in the same batch."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, VOCAB, generator=gen)
    logits[2, 5] = logits[2, 1030] = 100.0  # a tie: the lower id wins
    temps = torch.tensor([0.0, 1.0, 0.0, 0.7, 0.0, 1.0])
    tokens = sample(logits, temps)
    greedy = temps == 0
    assert torch.equal(tokens[greedy], logits[greedy].argmax(-1))
    assert tokens[2].item() == 5
    assert tokens.dtype == torch.int64 and tokens.shape == (6,)


def check_temperature_sharpens(sample) -> None:
    """logits log p at temperature 0.5 sample p squared (renormalised): the top token's share rises."""
    logits, temps = target_logits(64), torch.full((64,), 0.5)
    tokens = torch.cat([sample(logits, temps) for _ in range(8)])
    squared = TARGET[7] ** 2 / sum(p * p for p in TARGET.values())
    assert abs((tokens == 7).float().mean().item() - squared) < 0.08
