"""Run by test_triton_engine_cpu.py in a fresh process with TRITON_INTERPRET=1: the whole engine
with attention=triton, kv_store=triton, rope=triton, sampler=triton, linear=triton on CPU must give the sdpa/torch
engine's greedy tokens."""

import json
import sys

import interpreter_loop_bounds

from allmos import LLM, SamplingParams

interpreter_loop_bounds.install()

folder = sys.argv[1]
prompts = [[5, 6, 7, 8, 9, 10, 11], list(range(20, 60)), [3, 4], list(range(20, 52)) + [9]]
params = SamplingParams(temperature=0, max_tokens=6)
results = {}
for name, switches in {
    "reference": {},
    "triton": {"attention": "triton", "kv_store": "triton"},
    "triton_prefix": {"attention": "triton", "kv_store": "triton", "prefix_caching": True},
    "triton_rope": {"attention": "triton", "kv_store": "triton", "rope": "triton"},
    "triton_rope_unfused": {
        "attention": "triton",
        "kv_store": {"name": "triton", "fuse_rope": False},
        "rope": "triton",
    },
    # decode steps normalize, rotate and store the new token inside the decode attention kernel
    # (rope.fuse_qkv, on by default, is the other place for that work: the two exclude each other)
    "triton_fuse_rope": {
        "attention": {"name": "triton", "fuse_rope": True},
        "kv_store": "triton",
        "rope": {"name": "triton", "fuse_qkv": False},
    },
    "triton_sampler": {"attention": "triton", "kv_store": "triton", "rope": "triton", "sampler": "triton"},
    # the rope kernel beside the GEMVs (rope.fuse_qkv off)
    "triton_linear": {
        "attention": "triton",
        "kv_store": "triton",
        "rope": {"name": "triton", "fuse_qkv": False},
        "linear": "triton",
    },
    # one-token decode steps: the qkv GEMV normalizes, rotates and stores K/V in its epilogue (rope.fuse_qkv);
    # without kv_store.fuse_rope the store runs after it
    "triton_qkv_rope": {
        "attention": "triton",
        "kv_store": "triton",
        "rope": {"name": "triton", "fuse_qkv": True},
        "linear": "triton",
    },
    "triton_qkv_rope_store_after": {
        "attention": "triton",
        "kv_store": {"name": "triton", "fuse_rope": False},
        "rope": {"name": "triton", "fuse_qkv": True},
        "linear": "triton",
    },
    # decode rows beside prompt chunks of at most 16 tokens in the prefill kernel
    "triton_mixed": {"attention": "triton", "kv_store": "triton", "scheduler": "mixed", "max_num_batched_tokens": 16},
}.items():
    options = dict(dtype="float32", block_size=16, num_kv_blocks=32, max_model_len=256, max_num_batched_tokens=256)
    llm = LLM(folder, **(options | switches))
    # alone (single-token decode steps: linear=triton's GEMVs); then caches the prefix the last prompt shares
    results[name + "_single"] = [o["token_ids"] for o in llm.generate(prompts[1:2], params, use_tqdm=False)]
    results[name] = [o["token_ids"] for o in llm.generate(prompts, params, use_tqdm=False)]
    results[name + "_counters"] = llm.engine.counters() | {"mixed_steps": llm.engine.stats.steps("mixed")}
    layers = llm.engine.runner.model.attention_layers()
    results[name + "_counters"]["decode_fuses_rope"] = all(layer.decode_fuses_rope for layer in layers)
print(json.dumps(results))
