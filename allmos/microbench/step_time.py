"""Decode step time at a fixed batch and context, with CUDA graphs on and off, in one process.

`python -m allmos.microbench.step_time --batch 1 --context 512 [--graphs both] [switch=value ...]`
(`--graphs`: both = cuda_graphs false and true; all = false, forward and true; or one of true, forward, false;
`--batch 16 64 256`: several batches, measured one after the other on the same engine, which saves building an
engine (loading, compiling and capturing its graphs) for each).

Starts `--batch` sequences of `--context` prompt tokens, lets them reach steady decoding, then times
`--steps` consecutive decode steps (engine.step(), host work included, device synchronised at the
ends of each of five blocks) and reports milliseconds per step of the median block for each CUDA-graph
setting. With graphs it also times the captured graph alone (back-to-back replays between CUDA events:
the GPU time of what the graph holds, without the host: with cuda_graphs=true the whole step's forward, LM
head and a capturable sampler; with forward the model's forward alone), so the two figures separate device
from host time.
Engines are built one after the other, the first freed before the second starts.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import torch

from allmos.graph_runner.cuda_graph import bucket_for
from allmos.llm import LLM
from allmos.microbench.switches import architecture_of, parse_switches
from allmos.sampling_params import SamplingParams

WARM_STEPS = 8
GRAPH_SETTINGS = {"both": [False, True], "all": [False, "forward", True], "true": [True], "forward": ["forward"]}
GRAPH_SETTINGS["false"] = [False]
BLOCKS = 5  # the steps are timed in blocks; the median block is reported (a host hiccup moves one block)


def sync(llm: LLM) -> None:
    if llm.engine.runner.device.type == "cuda":
        torch.cuda.synchronize(llm.engine.runner.device)


def graph_replay_ms(llm: LLM, batch: int, context: int, replays: int = 50) -> float | None:
    graphs = llm.engine.runner.graph_runner
    if not getattr(graphs, "graphs", None):
        return None
    blocks = -(-context // llm.engine.config.block_size)
    graph = graphs.graphs[(bucket_for(batch, graphs.buckets), bucket_for(blocks, graphs.widths))]
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    graph.replay()
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / replays


def decode_step_ms(llm: LLM, batch: int, context: int, steps: int) -> tuple[float, float | None]:
    """(ms per engine step, ms per replay of the captured forward or None without graphs)."""
    engine = llm.engine
    params = SamplingParams(temperature=0, max_tokens=WARM_STEPS + steps + 4, ignore_eos=True)
    for i in range(batch):
        engine.add_request([1 + (7 * i + t) % 1000 for t in range(context)], params)
    while engine.stats.steps("decode") < WARM_STEPS:
        engine.step()
    block_ms = []
    for _ in range(BLOCKS):
        sync(llm)
        start = time.perf_counter()
        for _ in range(steps // BLOCKS):
            engine.step()
        sync(llm)
        block_ms.append(1e3 * (time.perf_counter() - start) / (steps // BLOCKS))
    # the sequences are still live, so the replayed inputs are real
    replay = graph_replay_ms(llm, batch, context + WARM_STEPS + steps)
    while engine.has_unfinished():
        engine.step()
    return statistics.median(block_ms), replay


def measure(model: str | None, arch: dict | None, options: dict, graphs: bool | str, args) -> list[dict]:
    """A row per batch of args.batch, on one engine built with this CUDA-graph setting."""
    llm = LLM(model, architecture=arch, random_weights="if_missing", **options, cuda_graphs=graphs)
    try:
        rows = []
        for batch in args.batch:
            ms, replay = decode_step_ms(llm, batch, args.context, args.steps)
            row = {"cuda_graphs": graphs, "batch": batch, "context": args.context, "ms_per_step": ms}
            rows.append(row | {"graph_replay_ms": replay})
        return rows
    finally:
        llm.close()
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a Hugging Face folder (default: random Qwen3-0.6B)")
    parser.add_argument("--arch", default="conf/model/qwen3-0.6b.yaml", help="model config whose architecture to use")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="one or more batch sizes")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--graphs", choices=tuple(GRAPH_SETTINGS), default="both")
    parser.add_argument("--out", default=None)
    parser.add_argument("switches", nargs="*", help="engine options as key=value (e.g. attention=triton)")
    args = parser.parse_args()
    options = parse_switches(args.switches)
    if min(args.batch) < 1:
        parser.error(f"--batch takes positive batch sizes; got {args.batch}")
    if "cuda_graphs" in options:
        parser.error("choose CUDA graphs with --graphs, not a cuda_graphs= switch")
    arch = architecture_of(args.arch)
    settings = GRAPH_SETTINGS[args.graphs]
    rows = [row for graphs in settings for row in measure(args.model, arch, options, graphs, args)]
    for row in rows:
        print(
            f"cuda_graphs={str(row['cuda_graphs']).lower():7s} batch {row['batch']} context {row['context']}: "
            f"{row['ms_per_step']:.3f} ms per decode step"
            + (f" (captured graph alone: {row['graph_replay_ms']:.3f} ms)" if row["graph_replay_ms"] else "")
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"switches": options, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
