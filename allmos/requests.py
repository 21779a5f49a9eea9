"""Check requests given to generate() before any work starts."""

from __future__ import annotations

from allmos.errors import RequestError
from allmos.sampling_params import SamplingParams


def check_request(
    index: int,
    token_ids: list[int],
    params: SamplingParams,
    vocab_size: int,
    max_model_len: int,
    max_tokens_in_cache: int,
) -> None:
    if not token_ids:
        raise RequestError(index, "the prompt is empty")
    if len(token_ids) >= max_model_len:
        raise RequestError(
            index, f"the prompt has {len(token_ids)} tokens; max_model_len={max_model_len} leaves no room to generate"
        )
    if params.max_tokens < 1:
        raise RequestError(index, f"max_tokens must be at least 1, got {params.max_tokens}")
    if params.temperature < 0:
        raise RequestError(index, f"temperature must be >= 0, got {params.temperature}")
    bad = next((t for t in token_ids if not 0 <= t < vocab_size), None)
    if bad is not None:
        raise RequestError(index, f"token id {bad} is outside the vocabulary [0, {vocab_size})")
    longest = min(len(token_ids) + params.max_tokens, max_model_len)
    if longest > max_tokens_in_cache:
        raise RequestError(
            index,
            f"it may grow to {longest} tokens but the whole KV cache holds {max_tokens_in_cache}; "
            "lower max_tokens or give the cache more memory",
        )
