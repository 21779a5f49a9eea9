"""The GPU timeline of decode steps at a fixed batch and context: which kernels run, how long each
takes, and how much of the step the GPU sits idle between them.

`python -m allmos.microbench.step_timeline --batch 1 --context 512 [--steps 20] [switch=value ...]`

Starts `--batch` sequences of `--context` prompt tokens, lets them reach steady decoding, then records
`--steps` engine steps with the torch profiler (kernels replayed from CUDA graphs included). Per step it
reports the GPU span (first kernel start to last kernel end, the steps' spans summed over the window
divided by the steps), the busy time (the union of kernel intervals), the idle time inside the span,
the idle time between steps, and per kernel name the calls and microseconds per step; the longest
idle gaps are listed with the kernels on each side (a gap before a step's first kernel is host time).
It also sums the step by role (allmos.microbench.kernel_roles: attention, projections, LM head, ...) and
gives what the step's K/V read and weights take at the device-to-device copy bandwidth measured first.
Unprofiled, it first times the steps' wall time and the host's wait for the GPU (near zero: the GPU waits
for the host). With `--host` the host's side is recorded too: its Python functions by own time (cProfile)
and the CUDA runtime calls by total time per step.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import time

import torch

from allmos.bench.bandwidth import copy_bandwidth
from allmos.bench.metrics import read_sizes
from allmos.llm import LLM
from allmos.microbench.kernel_roles import floors_us, us_per_role
from allmos.microbench.profile_steps import is_kernel
from allmos.microbench.switches import architecture_of, parse_switches
from allmos.sampling_params import SamplingParams

WARM_STEPS = 8


def kernel_intervals(prof) -> list[tuple[float, float, str]]:
    """(start us, end us, name) of every device event, in start order."""
    rows = []
    for event in prof.events():
        if is_kernel(event) and event.time_range.end > event.time_range.start:
            rows.append((float(event.time_range.start), float(event.time_range.end), event.name))
    return sorted(rows)


def busy_time(rows: list[tuple[float, float, str]]) -> float:
    """The union of the intervals' lengths (concurrent kernels count once)."""
    total, reach = 0.0, float("-inf")
    for start, end, _ in rows:
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def gaps(rows: list[tuple[float, float, str]], top: int) -> list[dict]:
    found, reach, last = [], float("-inf"), ""
    for start, end, name in rows:
        if reach != float("-inf") and start > reach:
            found.append({"us": start - reach, "after": last[:70], "before": name[:70]})
        if end > reach:
            reach, last = end, name
    return sorted(found, key=lambda g: -g["us"])[:top]


def summarise(rows, steps: int, top: int, num_layers: int = 0) -> dict:
    span = rows[-1][1] - rows[0][0]
    busy = busy_time(rows)
    per_name = collections.defaultdict(lambda: [0, 0.0])
    for start, end, name in rows:
        per_name[name][0] += 1
        per_name[name][1] += end - start
    kernels = sorted(per_name.items(), key=lambda kv: -kv[1][1])
    named = [
        {"name": name[:100], "calls_per_step": c / steps, "us_per_step": t / steps, "us_per_call": t / c}
        for name, (c, t) in kernels
    ]
    return {
        "steps": steps,
        "span_us_per_step": span / steps,
        "busy_us_per_step": busy / steps,
        "idle_us_per_step": (span - busy) / steps,
        "kernels_per_step": len(rows) / steps,
        "kernels": named[:top],
        "us_per_role": us_per_role(named, num_layers),
        "longest_gaps": gaps(rows, 12),
    }


def runtime_calls(prof, steps: int, top: int = 10) -> list[dict]:
    """The host's CUDA runtime and driver calls (cudaLaunchKernel, cudaEventSynchronize, ...) by total time."""
    totals = collections.defaultdict(lambda: [0, 0.0])
    for event in prof.events():
        if not is_kernel(event) and event.name.startswith("cu"):
            totals[event.name][0] += 1
            totals[event.name][1] += event.time_range.end - event.time_range.start
    rows = sorted(totals.items(), key=lambda kv: -kv[1][1])[:top]
    return [{"name": n, "calls_per_step": c / steps, "us_per_step": t / steps} for n, (c, t) in rows]


def host_wait_share(engine, steps: int) -> dict:
    """Unprofiled: wall time per step, and the part of it the host spends waiting for the GPU's tokens
    (in the runner's collect); the rest is the host's own work. A wait near zero: the GPU waits for the host."""
    runner, waits = engine.runner, []
    collect = runner.collect

    def timed_collect(step):
        start = time.perf_counter()
        out = collect(step)
        waits.append(time.perf_counter() - start)
        return out

    runner.collect = timed_collect  # this engine only, for the timed steps
    try:
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            engine.step()
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    finally:
        del runner.collect
    return {"wall_us_per_step": 1e6 * wall / steps, "host_wait_us_per_step": 1e6 * sum(waits) / steps}


def host_functions(engine, steps: int, top: int = 30) -> list[dict]:
    """The host's Python functions over `steps` steps (cProfile), by own time: where the host's work goes."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        engine.step()
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # (cc, nc, tottime, cumtime, callers)
    return [
        {
            "function": f"{path.rsplit('/', 2)[-1]}:{line}:{name}"[:90],
            "calls_per_step": nc / steps,
            "own_us_per_step": 1e6 * tt / steps,
            "cum_us_per_step": 1e6 * ct / steps,
        }
        for (path, line, name), (_, nc, tt, ct, _) in rows
    ]


def event_sequence(prof, last_us: float) -> list[dict]:
    """The device events and the host's runtime calls of the window's last `last_us` microseconds, in time
    order (`--sequence`): what the host issued when, and when the GPU ran it."""
    rows = []
    for event in prof.events():
        device = is_kernel(event)
        if device or event.name.startswith("cu"):
            start, end = float(event.time_range.start), float(event.time_range.end)
            rows.append({"start": start, "us": end - start, "side": "gpu" if device else "host", "name": event.name})
    if not rows:
        return []
    stop = max(r["start"] + r["us"] for r in rows)
    rows = sorted((r for r in rows if r["start"] >= stop - last_us), key=lambda r: r["start"])
    origin = rows[0]["start"] if rows else 0.0
    return [r | {"start": r["start"] - origin, "name": r["name"][:60]} for r in rows]


def timeline(
    llm: LLM, batch: int, context: int, steps: int, top: int, host: bool = False, sequence: float = 0, copy=None
) -> dict:
    engine = llm.engine
    params = SamplingParams(temperature=0, max_tokens=WARM_STEPS + 3 * steps + 4, ignore_eos=True)
    for i in range(batch):
        engine.add_request([1 + (7 * i + t) % 1000 for t in range(context)], params)
    first = engine.stats.steps("decode")  # one engine serves every batch: count this batch's steps only
    while engine.stats.steps("decode") < first + WARM_STEPS:
        engine.step()
    unprofiled = host_wait_share(engine, steps)
    python = host_functions(engine, steps) if host else None
    torch.cuda.synchronize()
    first_record = len(engine.stats.trace)
    activities = [torch.profiler.ProfilerActivity.CUDA] + ([torch.profiler.ProfilerActivity.CPU] if host else [])
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            engine.step()
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    profiled = [r for r in engine.stats.trace[first_record:] if r.kind == "decode"]
    while engine.has_unfinished():
        engine.step()
    result = {"batch": batch, "context": context, "profiled_wall_us_per_step": 1e6 * wall / steps} | unprofiled
    runner = engine.runner
    result |= summarise(kernel_intervals(prof), steps, top, runner.cache_shape.num_layers)
    if copy and profiled:
        result["floors_us"] = step_floors(runner, sum(r.context_tokens for r in profiled) / len(profiled), copy)
    if host:
        result |= {"runtime_calls": runtime_calls(prof, steps), "host_functions": python}
    return result | ({"sequence": event_sequence(prof, sequence)} if sequence else {})


def step_floors(runner, context_tokens: float, copy_bytes_per_s: float) -> dict:
    weight_bytes, kv_per_token = read_sizes(runner)
    return floors_us(context_tokens, kv_per_token, weight_bytes, copy_bytes_per_s)


def print_summary(result: dict) -> None:
    print(
        f"batch {result['batch']} context {result['context']}: GPU span {result['span_us_per_step']:.1f} us "
        f"per step, busy {result['busy_us_per_step']:.1f}, idle {result['idle_us_per_step']:.1f}, "
        f"{result['kernels_per_step']:.0f} kernels per step; unprofiled: wall {result['wall_us_per_step']:.1f} us, "
        f"host waiting {result['host_wait_us_per_step']:.1f} us per step"
    )
    roles = ", ".join(f"{role} {us:.1f}" for role, us in result["us_per_role"].items())
    print(f"  by role, us/step: {roles}")
    if "floors_us" in result:
        floors = result["floors_us"]
        print(f"  at the copy bandwidth: K/V read {floors['kv_read_us']:.1f} us, weights {floors['weights_us']:.1f} us")
    for k in result["kernels"]:
        print(f"{k['us_per_step']:9.1f} us/step {k['calls_per_step']:6.1f}x {k['us_per_call']:7.2f} us  {k['name']}")
    for call in result.get("runtime_calls", []):
        print(f"host: {call['us_per_step']:9.1f} us/step {call['calls_per_step']:6.1f}x  {call['name']}")
    for f in result.get("host_functions", []):
        own, cum, calls = f["own_us_per_step"], f["cum_us_per_step"], f["calls_per_step"]
        print(f"python: {own:8.1f} us/step own {cum:8.1f} cum {calls:6.1f}x  {f['function']}")
    for e in result.get("sequence", []):
        print(f"seq: {e['start']:10.1f} us {e['side']:4s} {e['us']:8.1f} us  {e['name']}")
    print("longest idle gaps:")
    for g in result["longest_gaps"]:
        print(f"{g['us']:9.1f} us after {g['after']} | before {g['before']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a Hugging Face folder (default: random Qwen3-0.6B)")
    parser.add_argument("--arch", default="conf/model/qwen3-0.6b.yaml", help="model config whose architecture to use")
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=25, help="kernel names listed")
    parser.add_argument(
        "--host", action="store_true", help="also record the host's Python functions and CUDA runtime calls"
    )
    parser.add_argument(
        "--sequence",
        type=float,
        default=0,
        help="list the device events (and with --host the runtime calls) of the last this many us",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument("switches", nargs="*", help="engine options as key=value (e.g. attention=triton)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("the timeline is the GPU's: run it on a CUDA device")
    options = parse_switches(args.switches)
    arch = architecture_of(args.arch)
    llm = LLM(args.model, architecture=arch, random_weights="if_missing", **options)
    try:
        copy = copy_bandwidth(llm.engine.runner.device)
        print(f"device-to-device copy: {copy / 1e9:.0f} GB/s (read + write)")
        results = [
            timeline(llm, b, args.context, args.steps, args.top, args.host, args.sequence, copy) for b in args.batch
        ]
    finally:
        llm.close()
    for result in results:
        print_summary(result)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"switches": options, "copy_bytes_per_s": copy, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
