from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one request. temperature 0 means greedy.

    generate() checks every field before any work starts (allmos.requests): temperature a finite
    number >= 0, max_tokens an int >= 1, ignore_eos a bool, logprobs an int in [0, 20] (vLLM's default
    max_logprobs) and at most the vocabulary size.
    """

    temperature: float = 1.0
    max_tokens: int = 64
    ignore_eos: bool = False
    logprobs: int = 0  # also return the top-k log-probabilities of each output position
