"""Run by test_triton_engine_cpu.py in a fresh process with TRITON_INTERPRET=1: the engine with
kv_cache_dtype=fp8 and the Triton kernels on CPU. Prints, per configuration, the greedy tokens and top-5
log-probabilities of a single prompt, then of a batch whose prompts share its prefix."""

import json
import sys

import interpreter_loop_bounds

from allmos import LLM, SamplingParams

interpreter_loop_bounds.install()

folder = sys.argv[1]
prompts = [[5, 6, 7, 8, 9, 10, 11], list(range(20, 60)), [3, 4], list(range(20, 52)) + [9]]
params = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True, logprobs=5)
TRITON = {"attention": "triton", "kv_store": "triton"}
results = {}
for name, switches in {
    "auto": {"kv_cache_dtype": "auto"},
    "sdpa": {},  # the torch path
    "triton_attention": {"attention": "triton"},  # the torch store's pages, read by the Triton kernels
    "triton": TRITON,
    "triton_prefix": TRITON | {"prefix_caching": True},
    "triton_rope": TRITON | {"rope": "triton"},  # the store fused in the rope kernel
    "triton_preempt": TRITON | {"num_kv_blocks": 5},  # with longer outputs: sequences are preempted
}.items():
    options = dict(dtype="float32", block_size=16, num_kv_blocks=32, max_model_len=256, max_num_batched_tokens=256)
    llm = LLM(folder, **(options | {"kv_cache_dtype": "fp8", "prefix_caching": False} | switches))
    run_params = SamplingParams(0, 40, True, 5) if name == "triton_preempt" else params
    runs = [llm.run_requests(batch, [run_params] * len(batch)) for batch in (prompts[1:2], prompts)]
    results[name] = [[(s.output_token_ids, [dict(t) for t in s.top_logprobs]) for s in seqs] for seqs in runs]
    results[name + "_counters"] = llm.engine.counters()
print(json.dumps(results))
