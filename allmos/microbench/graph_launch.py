"""The host's cost of launching the engine's captured decode graphs: `python -m allmos.microbench.graph_launch`.

Replays a captured forward graph `--replays` times back to back, timing each `replay()` call on the host
(not the GPU's work): the same graph every time, then two graphs of the same shape alternately (so a
launch never follows a running instance of itself), then the same graph with the GPU idle before each
launch. Prints the median host microseconds per launch of each pattern and the graph's node count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from allmos.llm import LLM
from allmos.microbench.switches import architecture_of, parse_switches


def host_us(launches) -> float:
    times = []
    for launch in launches:
        start = time.perf_counter()
        launch()
        times.append(1e6 * (time.perf_counter() - start))
    torch.cuda.synchronize()
    return statistics.median(times)


def idle_launch_us(graph, replays: int) -> float:
    times = []
    for _ in range(replays):
        torch.cuda.synchronize()
        start = time.perf_counter()
        graph.replay()
        times.append(1e6 * (time.perf_counter() - start))
    torch.cuda.synchronize()
    return statistics.median(times)


def measure(llm: LLM, replays: int) -> list[dict]:
    runner = llm.engine.runner.graph_runner
    rows = []
    for (batch, width), graph in sorted(runner.graphs.items())[:: max(1, len(runner.graphs) // 4)]:
        twin = runner.graphs.get((batch, runner.widths[0] if width != runner.widths[0] else runner.widths[-1]))
        row = {"batch": batch, "width": width}
        row["same_graph_us"] = host_us([graph.replay] * replays)
        if twin is not None and twin is not graph:
            row["alternating_us"] = host_us([graph.replay, twin.replay] * (replays // 2))
        row["gpu_idle_us"] = idle_launch_us(graph, replays // 4)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="conf/model/qwen3-0.6b.yaml", help="model config whose architecture to use")
    parser.add_argument("--replays", type=int, default=200)
    parser.add_argument("--out", default=None)
    parser.add_argument("switches", nargs="*", help="engine options as key=value (e.g. linear.pdl=false)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("graph launches need a CUDA device")
    arch = architecture_of(args.arch)
    options = parse_switches(args.switches) | {"max_model_len": 2048}
    llm = LLM(None, architecture=arch, random_weights="always", **options)
    try:
        rows = measure(llm, args.replays)
    finally:
        llm.close()
    for row in rows:
        print(
            f"batch {row['batch']:4d} width {row['width']:3d}: host us per launch: "
            f"same graph {row['same_graph_us']:.1f}, alternating {row.get('alternating_us', float('nan')):.1f}, "
            f"GPU idle {row['gpu_idle_us']:.1f}"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"switches": options, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
