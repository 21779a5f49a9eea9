"""Where a step's time goes: `python -m allmos.microbench.profile_steps [switch=value ...]`.

Runs a workload once normally (the real wall time) and once with a device sync between phases,
attributing each decode and prefill step's time to: scheduling, input preparation (host arrays and
copies), the step on the device (forward, LM head and sampling: one graph replay with cuda_graphs=true),
reading the tokens back, and postprocessing.
The synced run is slower than the real one; the difference is the overlap the real run gets.
Prints a table and, with --out, writes it as JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

import torch

from allmos.batch import StepOutput
from allmos.bench.workloads import WorkloadSpec, make_requests, warmup_requests
from allmos.engine.step_inputs import build_step_inputs
from allmos.llm import LLM
from allmos.microbench.switches import architecture_of, parse_switches

PHASES = ("schedule", "prepare", "step", "readback", "postprocess")


class PhaseTimer:
    def __init__(self, device: torch.device):
        self.device = device
        self.totals: dict[str, collections.Counter] = {
            "prefill": collections.Counter(),
            "decode": collections.Counter(),
        }
        self.steps = collections.Counter()

    def mark(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


def profiled_step(engine, timer: PhaseTimer) -> None:
    runner = engine.runner
    t0 = timer.mark()
    batch = engine.scheduler.schedule()
    t1 = timer.mark()
    seed = runner.sampler.next_seed()
    inputs = build_step_inputs(batch, runner.config.block_size, runner.device, runner.staging, seed=seed)
    t2 = timer.mark()
    with torch.inference_mode():
        _, tokens = runner.step_outputs(inputs, len(batch))
        t3 = timer.mark()
        tokens = tokens.tolist()
    t4 = timer.mark()
    engine.scheduler.postprocess(batch, StepOutput(tokens))
    t5 = timer.mark()
    kind = "prefill" if batch.is_prefill else "decode"
    timer.steps[kind] += 1
    for phase, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
        timer.totals[kind][phase] += seconds


def submit(llm: LLM, requests) -> None:
    for r in requests:
        llm.engine.add_request(r.token_ids, r.params)


def profile(llm: LLM, spec: WorkloadSpec) -> dict:
    requests = make_requests(spec, llm.engine.hf_config.vocab_size)
    warm = warmup_requests(spec)
    llm.run_requests([r.token_ids for r in warm], [r.params for r in warm])
    start = time.perf_counter()
    llm.run_requests([r.token_ids for r in requests], [r.params for r in requests])
    real = time.perf_counter() - start
    timer = PhaseTimer(llm.engine.runner.device)
    submit(llm, requests)
    start = time.perf_counter()
    while llm.engine.has_unfinished():
        profiled_step(llm.engine, timer)
    synced = time.perf_counter() - start
    return {
        "real_wall_s": real,
        "synced_wall_s": synced,
        "steps": dict(timer.steps),
        "seconds": {k: dict(v) for k, v in timer.totals.items()},
    }


def device_time_us(event) -> float:
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, name):
            return float(getattr(event, name))
    return 0.0


def is_kernel(event) -> bool:
    """Work the GPU ran: kernels (replayed from CUDA graphs too), copies and memsets. Rows of the host's
    side (an operator such as aten::mm, a runtime call such as cuLaunchKernelEx, or an inductor kernel's
    launch, which carries the kernel's own name) also carry the device time of the kernels they launched:
    counting them would count those kernels twice."""
    device_type = getattr(event, "device_type", None)
    if device_type is not None:
        return device_type == torch.autograd.DeviceType.CUDA
    return not event.key.startswith(("aten::", "cu"))


def kernel_rows(prof) -> list[tuple[float, str, int]]:
    """(device microseconds, name, calls) of each kernel in a profile, longest first."""
    rows = ((device_time_us(e), e.key, e.count) for e in prof.key_averages() if is_kernel(e))
    return sorted((row for row in rows if row[0] > 0), reverse=True)


def kernel_breakdown(llm: LLM, spec: WorkloadSpec, skip: int, steps: int, top: int = 25) -> dict:
    """GPU time per kernel over `steps` decode steps taken after `skip` steps of the workload (torch
    profiler; kernels replayed from CUDA graphs included), in microseconds per step."""
    submit(llm, make_requests(spec, llm.engine.hf_config.vocab_size))
    engine = llm.engine
    for _ in range(skip):
        engine.step()
    batch_sizes = []
    on_cuda = engine.runner.device.type == "cuda"
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if on_cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            batch_sizes.append(len(engine.scheduler.running))
            engine.step()
        if on_cuda:
            torch.cuda.synchronize()
    while engine.has_unfinished():
        engine.step()
    kernels = [{"name": k[:90], "us_per_step": t / steps, "calls_per_step": c / steps} for t, k, c in kernel_rows(prof)]
    return {
        "steps": steps,
        "batch_sizes": batch_sizes,
        "kernels": kernels[:top],
        "total_us_per_step": sum(k["us_per_step"] for k in kernels),
    }


def print_kernels(result: dict) -> None:
    print(
        f"kernels over {result['steps']} decode steps (batch {result['batch_sizes'][0]}): "
        f"{result['total_us_per_step']:.0f} us of GPU time per step"
    )
    for k in result["kernels"]:
        print(f"{k['us_per_step']:9.1f} us {k['calls_per_step']:6.1f}x  {k['name']}")


def print_table(result: dict) -> None:
    print(f"real wall {result['real_wall_s']:.2f} s; with a sync between phases {result['synced_wall_s']:.2f} s")
    for kind, phases in result["seconds"].items():
        steps = result["steps"].get(kind, 0)
        if not steps:
            continue
        total = sum(phases.values())
        cells = "  ".join(
            f"{p} {phases.get(p, 0):7.3f}s ({1e3 * phases.get(p, 0) / steps:6.2f} ms/step)" for p in PHASES
        )
        print(f"{kind:8s} {steps:5d} steps {total:7.2f}s: {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="a Hugging Face folder (default: random Qwen3-0.6B)")
    parser.add_argument("--num-requests", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=1024, help="longest prompt and output (nano_bench: 1024)")
    parser.add_argument("--arch", default="conf/model/qwen3-0.6b.yaml", help="model config whose architecture to use")
    parser.add_argument("--out", default=None)
    parser.add_argument("--kernels", type=int, default=0, help="also profile kernels over this many decode steps")
    parser.add_argument("--kernels-after", type=int, default=100, help="steps to run before the kernel profile")
    parser.add_argument("switches", nargs="*", help="engine options as key=value (e.g. attention=triton)")
    args = parser.parse_args()
    options = parse_switches(args.switches)
    arch = architecture_of(args.arch)
    if options.get("tensor_parallel_size", 1) > 1:
        parser.error("the step profiler drives rank 0 alone: use tensor_parallel_size=1")
    llm = LLM(args.model, architecture=arch, random_weights="if_missing", **options)
    short = min(100, args.max_len)
    spec = WorkloadSpec(
        name="nano_bench",
        num_requests=args.num_requests,
        input_len_min=short,
        input_len_max=args.max_len,
        output_len_min=short,
        output_len_max=args.max_len,
    )
    result = profile(llm, spec) | {"switches": llm.engine.config.switches()}
    print_table(result)
    if args.kernels:
        result["kernel_breakdown"] = kernel_breakdown(llm, spec, args.kernels_after, args.kernels)
        print_kernels(result["kernel_breakdown"])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1, default=str)


if __name__ == "__main__":
    main()
