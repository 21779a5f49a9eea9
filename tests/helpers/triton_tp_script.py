"""Run by test_triton_tp_cpu.py in a fresh process with TRITON_INTERPRET=1 (the spawned workers inherit it):
the engine with every Triton plugin on two ranks (gloo) against one rank and against the torch plugins on
one rank, and the same on FP8 pages. A prompt alone decodes one token a step, which is where the qkv GEMV
does the rope kernel's work (rope.fuse_qkv, on by default) on each rank's own heads."""

import json
import sys

import interpreter_loop_bounds

from allmos import LLM, SamplingParams

interpreter_loop_bounds.install()  # at import: each spawned worker re-imports this file and needs it too

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], list(range(20, 60)), [3, 4]]
PARAMS = SamplingParams(temperature=0, max_tokens=6)
OPTIONS = dict(dtype="float32", block_size=16, num_kv_blocks=32, max_model_len=256, max_num_batched_tokens=256)
TRITON = {"attention": "triton", "kv_store": "triton", "rope": "triton", "linear": "triton", "sampler": "triton"}
CONFIGS = {
    "reference": {},
    "triton_one_rank": TRITON,
    "triton_two_ranks": TRITON | {"tensor_parallel_size": 2},
    "fp8_one_rank": TRITON | {"kv_cache_dtype": "fp8"},
    "fp8_two_ranks": TRITON | {"kv_cache_dtype": "fp8", "tensor_parallel_size": 2},
}


def tokens(llm, prompts) -> list:
    return [o["token_ids"] for o in llm.generate(prompts, PARAMS, use_tqdm=False)]


def run(folder: str, switches: dict) -> dict:
    llm = LLM(folder, **(OPTIONS | switches))
    try:
        counters = llm.engine.counters()
        alone = tokens(llm, PROMPTS[1:2])
        return {"alone": alone, "batch": tokens(llm, PROMPTS), "rope_in_qkv": counters["rope_in_qkv"]}
    finally:
        llm.close()


def main() -> None:
    folder = sys.argv[1]
    print(json.dumps({name: run(folder, switches) for name, switches in CONFIGS.items()}))


if __name__ == "__main__":  # the workers are spawned and re-import this file
    main()
