"""The public entry point: `LLM(model, **options).generate(prompts, sampling_params)`."""

from __future__ import annotations

import os
import time
from typing import Any
from typing import Sequence as Seq

from allmos.config import EngineConfig
from allmos.engine.engine import Engine, StepFailed
from allmos.progress import phase
from allmos.requests import RequestFailed, as_prompt_list, check_priority, check_request, prompt_token_ids
from allmos.runners import make_runner
from allmos.sampling_params import SamplingParams

Prompt = str | list[int]


class LLM:
    def __init__(self, model: str | None = None, **options: Any):
        config = EngineConfig.create(model, **options)
        with phase("engine: building"):
            self.engine = Engine(config, make_runner)
        self.tokenizer = load_tokenizer(self.engine.config.model)

    def close(self) -> None:
        """Stop the engine (and its tensor-parallel workers); generate() is refused afterwards."""
        self.engine.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def generate(
        self,
        prompts: Seq[Prompt],
        sampling_params: SamplingParams | Seq[SamplingParams] | None = None,
        use_tqdm: bool = True,
        priority: Seq[int] | None = None,
    ) -> list[dict]:
        """Outputs in prompt order: {"text": str | None, "token_ids": list[int]} each, plus
        "logprobs" (top-k (token id, log-prob) pairs per output token) when the params ask for them.

        As in vLLM, a string or a flat list of token ids is one prompt, a list of those a batch. Every
        request is checked before any work starts (RequestError naming its index and field). If a
        request fails inside an engine step, generate() returns nothing for the call: the failed
        requests are finished with their error and removed, the call's other requests are aborted, and
        RequestFailed names the failed indices; the engine serves later calls. `priority` (one int per
        prompt, default 0) orders the requests under scheduler.policy=priority: lower is served sooner."""
        self.engine.check_open()
        prompts = as_prompt_list(prompts)
        params = self.params_per_prompt(prompts, sampling_params)
        token_lists = [self.encode(i, p) for i, p in enumerate(prompts)]
        seqs = self.run_requests(token_lists, params, use_tqdm, priority)
        return [self.output_of(s) for s in seqs]

    def output_of(self, seq) -> dict:
        out = {"text": self.decode(seq.output_token_ids), "token_ids": seq.output_token_ids}
        if seq.params.logprobs:
            out["logprobs"] = seq.top_logprobs
        return out

    def run_requests(
        self,
        token_lists: list[list[int]],
        params: list[SamplingParams],
        use_tqdm: bool = False,
        priority: Seq[int] | None = None,
    ):
        """Check, submit and run token-id requests (with their priorities, default 0 each); returns the
        finished sequences in order. A step failure raises RequestFailed (see generate) with this call's
        requests removed from the engine."""
        self.engine.check_open()
        priorities = priorities_per_prompt(len(token_lists), priority)
        self.check(token_lists, params)
        seqs = [self.engine.add_request(t, p, r) for t, p, r in zip(token_lists, params, priorities)]
        try:
            self.run_until_done(seqs, use_tqdm)
        except StepFailed as failure:
            for seq in seqs:
                self.engine.abort(seq)
            failed = {id(s) for s in failure.seqs}
            indices = [i for i, s in enumerate(seqs) if id(s) in failed]
            if not indices:
                raise
            raise RequestFailed(indices, failure.cause) from failure.cause
        return seqs

    def params_per_prompt(self, prompts, sampling_params) -> list[SamplingParams]:
        if sampling_params is None:
            sampling_params = SamplingParams()
        if isinstance(sampling_params, SamplingParams):
            return [sampling_params] * len(prompts)
        if len(sampling_params) != len(prompts):
            raise ValueError(f"{len(sampling_params)} sampling params for {len(prompts)} prompts")
        return list(sampling_params)

    def encode(self, index: int, prompt: Prompt) -> list[int]:
        if not isinstance(prompt, str):
            return prompt_token_ids(index, prompt)
        if self.tokenizer is None:
            from allmos.errors import RequestError

            raise RequestError(index, "a text prompt needs a tokenizer, and the model folder has none; pass token ids")
        return self.tokenizer.encode(prompt)

    def decode(self, token_ids: list[int]) -> str | None:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True) if self.tokenizer else None

    def check(self, token_lists: list[list[int]], params: list[SamplingParams]) -> None:
        engine = self.engine
        capacity = engine.runner.num_blocks * engine.config.block_size
        for i, (tokens, p) in enumerate(zip(token_lists, params)):
            check_request(i, tokens, p, engine.hf_config.vocab_size, engine.config.max_model_len, capacity)

    def run_until_done(self, seqs: list, use_tqdm: bool) -> None:
        """Step until every request is done; the bar counts generated tokens (rate, time left), read
        from the host-side token lists the steps already filled, at most ten times a second."""
        bar = make_bar(sum(s.params.max_tokens for s in seqs), use_tqdm)
        shown = time.perf_counter()
        try:
            while self.engine.has_unfinished():
                self.engine.step()
                if bar is not None and time.perf_counter() - shown > BAR_INTERVAL_S:
                    bar.update(generated(seqs) - bar.n)
                    shown = time.perf_counter()
        finally:
            if bar is not None:
                done = generated(seqs)
                bar.total = done  # requests that ended early (EOS) or failed generated fewer than max_tokens
                bar.update(done - bar.n)
                bar.close()


BAR_INTERVAL_S = 0.1


def priorities_per_prompt(num_prompts: int, priority: Seq[int] | None) -> list[int]:
    if priority is None:
        return [0] * num_prompts
    if isinstance(priority, (str, bytes)) or not hasattr(priority, "__len__"):
        raise TypeError(f"priority must be a list of ints, one per prompt, got {type(priority).__name__}")
    if len(priority) != num_prompts:
        raise ValueError(f"priority: {len(priority)} priorities for {num_prompts} prompts")
    for index, value in enumerate(priority):
        check_priority(value, index)
    return list(priority)


def generated(seqs: list) -> int:
    return sum(s.num_output_tokens for s in seqs)


def make_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generate", unit="tok", dynamic_ncols=True)


def load_tokenizer(folder: str | None):
    if not folder or not os.path.isfile(os.path.join(folder, "tokenizer_config.json")):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
