"""The prefill phase of nano_bench and the switch to decoding: `python -m allmos.microbench.prefill_profile
[--runs 2] [--out FILE] [switch=value ...]`.

Builds the engine and warms it up as a benchmark job does, then runs the workload `--runs` times, each
with fresh prompts (another workload seed, so the prefix cache finds nothing), and prints the step times
from the last prefill steps to the first decode steps of each run: a cost that only the first run pays
is a first use (a graph's first replay, a kernel loaded or compiled on first call), not steady work.
A last run is profiled during its prefill steps only: GPU time per kernel per prefill step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from allmos.bench.workloads import WorkloadSpec, make_requests, warmup_requests
from allmos.llm import LLM
from allmos.microbench.profile_steps import kernel_rows
from allmos.microbench.switches import parse_switches

AROUND = 3  # decode steps shown after the last prefill step


def submit(llm: LLM, spec: WorkloadSpec) -> None:
    for r in make_requests(spec, llm.engine.hf_config.vocab_size):
        llm.engine.add_request(r.token_ids, r.params)


def timed_run(llm: LLM, spec: WorkloadSpec) -> list[dict]:
    """Step records of the prefill steps and the first decode steps of one whole run."""
    llm.engine.reset_stats()
    submit(llm, spec)
    while llm.engine.has_unfinished():
        llm.engine.step()
    rows = llm.engine.stats.trace_rows()
    first_decode = next(i for i, r in enumerate(rows) if r["kind"] == "decode")
    return rows[: first_decode + AROUND]


def prefill_kernels(llm: LLM, spec: WorkloadSpec, top: int = 25) -> dict:
    """GPU time per kernel over one run's prefill steps (the profiler stops at the first decode step)."""
    engine = llm.engine
    engine.reset_stats()
    submit(llm, spec)
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        while not any(r.kind == "decode" for r in engine.stats.trace):
            engine.step()
        if engine.runner.device.type == "cuda":
            torch.cuda.synchronize()
    steps = sum(r.kind == "prefill" for r in engine.stats.trace)
    while engine.has_unfinished():
        engine.step()
    kernels = [
        {"name": k[:90], "ms_per_step": t / steps / 1e3, "calls_per_step": c / steps} for t, k, c in kernel_rows(prof)
    ]
    return {
        "prefill_steps": steps,
        "kernels": kernels[:top],
        "total_ms_per_step": sum(k["ms_per_step"] for k in kernels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="conf/model/qwen3-0.6b.yaml", help="model config whose architecture to use")
    parser.add_argument("--workload", default="conf/workload/nano_bench.yaml", help="workload config")
    parser.add_argument("--runs", type=int, default=2, help="timed runs, each with fresh prompts")
    parser.add_argument("--out", default=None)
    parser.add_argument("switches", nargs="*", help="engine options as key=value (e.g. attention=triton)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("prefill_profile needs a CUDA GPU")
    from omegaconf import OmegaConf

    arch = OmegaConf.to_container(OmegaConf.load(args.arch).architecture)
    llm = LLM(None, architecture=arch, random_weights="if_missing", **parse_switches(args.switches))
    fields = OmegaConf.to_container(OmegaConf.load(args.workload))
    spec = WorkloadSpec(**{k: v for k, v in fields.items() if k != "defaults"})
    warm = warmup_requests(spec)
    llm.run_requests([r.token_ids for r in warm], [r.params for r in warm])
    result = {"switches": llm.engine.config.switches(), "runs": []}
    for run in range(args.runs):
        rows = timed_run(llm, dataclasses.replace(spec, seed=run))
        result["runs"].append(rows)
        print(f"run {run}: " + "  ".join(f"{r['kind'][0]}{r['num_tokens']}:{r['step_ms']:.1f}ms" for r in rows))
    result["prefill_kernels"] = prefill_kernels(llm, dataclasses.replace(spec, seed=args.runs))
    kernels = result["prefill_kernels"]
    print(f"kernels over {kernels['prefill_steps']} prefill steps: {kernels['total_ms_per_step']:.2f} ms per step")
    for k in kernels["kernels"]:
        print(f"{k['ms_per_step']:8.3f} ms {k['calls_per_step']:6.1f}x  {k['name']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, default=str)


if __name__ == "__main__":
    main()
