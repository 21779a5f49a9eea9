"""The correctness probe: a fixed greedy prompt set, compared with the all-off reference.

The reference for a (model, weights, dtype, device) is generated with every optimization off,
kept on disk under $ALLMOS_CACHE (default ~/.cache/allmos)/probes, and made on first need,
before the job's own engine takes the device's memory.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import random

import torch

from allmos.bench.compare import close_enough
from allmos.bench.record import write_atomic
from allmos.config import EngineConfig, PluginChoice
from allmos.sampling_params import SamplingParams

NUM_PROMPTS, MIN_LEN, MAX_LEN, MAX_TOKENS, TOP = 4, 8, 48, 16, 5
ALL_OFF = dict(
    attention=PluginChoice("sdpa"),
    kv_store=PluginChoice("torch"),
    cuda_graphs=False,
    prefix_caching=False,
    compile=False,
    chunked_prefill=False,
    async_scheduling=False,
    scheduler=PluginChoice("continuous"),
    tensor_parallel_size=1,
)


def probe_prompts(vocab_size: int) -> list[list[int]]:
    rng = random.Random(1234)
    top = min(vocab_size, 10000) - 1
    return [[rng.randint(0, top) for _ in range(rng.randint(MIN_LEN, MAX_LEN))] for _ in range(NUM_PROMPTS)]


def cache_dir() -> str:
    return os.path.join(os.environ.get("ALLMOS_CACHE", os.path.expanduser("~/.cache/allmos")), "probes")


def reference_path(config: EngineConfig, weights: str) -> str:
    # "random-v2": random weights are drawn per checkpoint tensor name (tensor-parallel consistent)
    identity = json.dumps(
        [config.model, config.architecture, weights, config.seed, "random-v2"], sort_keys=True, default=str
    )
    digest = hashlib.sha1(identity.encode()).hexdigest()[:12]
    dtype = str(config.torch_dtype).removeprefix("torch.")
    return os.path.join(
        cache_dir(), f"{config.model_name or 'model'}-{weights}-{dtype}-{config.resolved_device}-{digest}.json"
    )


def generate_probe(llm) -> list[dict]:
    prompts = probe_prompts(llm.engine.hf_config.vocab_size)
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, ignore_eos=True, logprobs=TOP)
    seqs = llm.run_requests(prompts, [params] * len(prompts))
    return [{"tokens": s.output_token_ids, "top": [[t for t, _ in step] for step in s.top_logprobs]} for s in seqs]


def ensure_reference(config: EngineConfig, weights: str) -> str:
    """The reference file's path; generates it with everything off when it does not exist yet."""
    path = reference_path(config, weights)
    if os.path.exists(path):
        return path
    from allmos.llm import LLM

    blocks = NUM_PROMPTS * ((MAX_LEN + MAX_TOKENS) // config.block_size + 1)
    options = {k: v for k, v in config.__dict__.items() if k != "model"} | ALL_OFF | {"num_kv_blocks": blocks}
    llm = LLM(config.model, **options)
    write_atomic(path, json.dumps({"outputs": generate_probe(llm)}))
    del llm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return path


def check_probe(llm, reference: str) -> dict:
    with open(reference) as f:
        expected = json.load(f)["outputs"]
    ours = generate_probe(llm)
    verdicts = [close_enough(o["tokens"], o["top"], e["tokens"], e["top"]) for o, e in zip(ours, expected)]
    return {
        "passed": all(v.passed for v in verdicts),
        "first_divergence": [v.divergence for v in verdicts],
        "reasons": [v.reason for v in verdicts if v.reason],
        "reference": reference,
    }
