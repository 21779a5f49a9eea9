"""Check requests given to generate() before any work starts; every message names the request's index.

Prompts follow vLLM: a string, or a list of token ids, is one prompt; a list of those is a batch. A
flat list of ints is therefore ONE tokenized prompt, never a batch of one-token prompts.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from allmos.errors import RequestError
from allmos.sampling_params import SamplingParams

MAX_LOGPROBS = 20  # as vLLM's default max_logprobs: top-k beyond this is refused up front


class RequestFailed(RuntimeError):
    """Requests of a generate() call that failed inside an engine step. The engine finished them with
    the error and removed them, aborted the call's other requests, and serves later calls."""

    def __init__(self, indices: list[int], cause: BaseException):
        which = ", ".join(map(str, indices))
        super().__init__(
            f"request {which}: failed inside an engine step ({type(cause).__name__}: {cause}); the other "
            "requests of this generate() call were aborted, and the engine serves later calls"
        )
        self.indices = indices


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def bad_token_id(token_ids: list, vocab_size: int) -> Any:
    """The first id that is not an int in [0, vocab_size), or None. Plain ints are checked at C speed
    (map, min, max): a benchmark submits hundreds of thousands of prompt tokens inside its timed run."""
    if set(map(type, token_ids)) == {int} and min(token_ids) >= 0 and max(token_ids) < vocab_size:
        return None
    return next((t for t in token_ids if not is_int(t) or not 0 <= t < vocab_size), None)


def is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def as_prompt_list(prompts: Any) -> list:
    """One string or one flat list of token ids is one prompt; any other sequence is a batch."""
    if isinstance(prompts, str):
        return [prompts]
    if hasattr(prompts, "tolist"):  # a numpy array or a torch tensor of token ids
        prompts = prompts.tolist()
    if not isinstance(prompts, (list, tuple)):
        kind = type(prompts).__name__
        raise TypeError(f"prompts must be a string, a list of token ids or a list of those, got {kind}")
    if prompts and all(isinstance(p, numbers.Number) for p in prompts):
        return [list(prompts)]
    return list(prompts)


def prompt_token_ids(index: int, prompt: Any) -> list[int]:
    """The token ids of a prompt given as ids: ints only (not bools, floats or strings)."""
    if prompt is None:
        raise RequestError(index, "the prompt is None; give a string or a list of token ids")
    if hasattr(prompt, "tolist"):
        prompt = prompt.tolist()
    if not isinstance(prompt, (list, tuple)):
        raise RequestError(index, f"the prompt is a {type(prompt).__name__}; give a string or a list of token ids")
    for position, token in enumerate(prompt):
        if not is_int(token):
            raise RequestError(
                index, f"token id {token!r} at position {position} is a {type(token).__name__}, not an int"
            )
    return [int(t) for t in prompt]


def check_params(index: int, params: Any, vocab_size: int) -> None:
    if not isinstance(params, SamplingParams):
        raise RequestError(index, f"sampling_params must be a SamplingParams, got {type(params).__name__}")
    t = params.temperature
    if not is_real(t) or not math.isfinite(t):
        raise RequestError(index, f"temperature must be a finite number, got {t!r}")
    if t < 0:
        raise RequestError(index, f"temperature must be >= 0, got {t}")
    if not is_int(params.max_tokens):
        raise RequestError(index, f"max_tokens must be an integer, got {params.max_tokens!r}")
    if params.max_tokens < 1:
        raise RequestError(index, f"max_tokens must be at least 1, got {params.max_tokens}")
    if not isinstance(params.ignore_eos, bool):
        raise RequestError(index, f"ignore_eos must be True or False, got {params.ignore_eos!r}")
    most = min(MAX_LOGPROBS, vocab_size)
    if not is_int(params.logprobs) or not 0 <= params.logprobs <= most:
        raise RequestError(index, f"logprobs must be an integer in [0, {most}], got {params.logprobs!r}")


def check_priority(priority: Any, index: int | None = None) -> None:
    """A request's priority is an int (lower is served sooner under scheduler.policy=priority)."""
    if is_int(priority):
        return
    reason = f"priority must be an int (lower is served sooner), got {priority!r}"
    if index is not None:
        raise RequestError(index, reason)
    raise TypeError(reason)


def check_request(
    index: int,
    token_ids: list[int],
    params: SamplingParams,
    vocab_size: int,
    max_model_len: int,
    max_tokens_in_cache: int,
) -> None:
    check_params(index, params, vocab_size)
    if not token_ids:
        raise RequestError(index, "the prompt is empty")
    if len(token_ids) >= max_model_len:
        raise RequestError(
            index, f"the prompt has {len(token_ids)} tokens; max_model_len={max_model_len} leaves no room to generate"
        )
    bad = bad_token_id(token_ids, vocab_size)
    if bad is not None:
        raise RequestError(index, f"token id {bad!r} is outside the vocabulary [0, {vocab_size})")
    longest = min(len(token_ids) + params.max_tokens, max_model_len)
    if longest > max_tokens_in_cache:
        raise RequestError(
            index,
            f"it may grow to {longest} tokens but the whole KV cache holds {max_tokens_in_cache}; "
            "lower max_tokens or give the cache more memory",
        )
