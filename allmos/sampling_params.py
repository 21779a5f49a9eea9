from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one request. temperature 0 means greedy."""

    temperature: float = 1.0
    max_tokens: int = 64
    ignore_eos: bool = False
    logprobs: int = 0  # also return the top-k log-probabilities of each output position
