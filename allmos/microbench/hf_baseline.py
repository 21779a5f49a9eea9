"""transformers' generate against allmos on the same architecture, weights and requests.

`python -m allmos.microbench.hf_baseline --batch 64 --max-new-tokens 256 [--out FILE] [switch=value ...]`

Saves a random-weight Qwen3-0.6B (or reads --model) once, takes the first `--batch` prompts of
nano_bench, and times transformers' batched sampling at temperature 0.6 (left-padded, one generate call,
every request `--max-new-tokens` long) and then allmos (everything on unless switches say otherwise)
on exactly those requests. Prints output tok/s of both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from allmos.bench.workloads import WorkloadSpec, make_requests
from allmos.llm import LLM
from allmos.microbench.switches import parse_switches
from allmos.sampling_params import SamplingParams


def random_checkpoint(folder: str) -> str:
    if os.path.exists(os.path.join(folder, "config.json")):
        return folder
    from omegaconf import OmegaConf
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = OmegaConf.to_container(OmegaConf.load("conf/model/qwen3-0.6b.yaml").architecture)
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folder)
    return folder


def prompts(batch: int) -> list[list[int]]:
    spec = WorkloadSpec(name="nano_bench", num_requests=256, input_len_min=100, input_len_max=1024)
    return [r.token_ids for r in make_requests(spec, 151936)[:batch]]


def time_transformers(folder: str, batch: list[list[int]], new_tokens: int) -> float:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).cuda().eval()
    model.generation_config.eos_token_id = None
    width = max(map(len, batch))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in batch], device="cuda")
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device="cuda")
    kwargs = dict(attention_mask=mask, do_sample=True, temperature=0.6, top_k=0, pad_token_id=0)
    model.generate(ids[:, :16], attention_mask=mask[:, :16], max_new_tokens=4, do_sample=False, pad_token_id=0)
    torch.cuda.synchronize()
    start = time.perf_counter()
    model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    del model
    torch.cuda.empty_cache()
    return seconds


def time_allmos(folder: str, batch: list[list[int]], new_tokens: int, switches: dict) -> float:
    llm = LLM(folder, **switches)
    params = SamplingParams(temperature=0.6, max_tokens=new_tokens, ignore_eos=True)
    llm.generate([list(range(1, 17))], SamplingParams(max_tokens=8), use_tqdm=False)
    torch.cuda.synchronize()
    start = time.perf_counter()
    llm.generate(batch, params, use_tqdm=False)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="/tmp/allmos-qwen3-0.6b-random")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--out", default=None)
    parser.add_argument("switches", nargs="*")
    args = parser.parse_args()

    switches = parse_switches(args.switches)  # over LLM's defaults: everything on
    folder = random_checkpoint(args.model)
    batch = prompts(args.batch)
    tokens = args.batch * args.max_new_tokens
    hf = time_transformers(folder, batch, args.max_new_tokens)
    ours = time_allmos(folder, batch, args.max_new_tokens, switches)
    result = {
        "batch": args.batch,
        "new_tokens": args.max_new_tokens,
        "transformers_s": hf,
        "allmos_s": ours,
        "transformers_tok_s": tokens / hf,
        "allmos_tok_s": tokens / ours,
        "speedup": hf / ours,
        "switches": switches,
        "device": torch.cuda.get_device_name(0),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
