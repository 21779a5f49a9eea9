"""The host's own work per decode step, without a GPU: `python -m allmos.microbench.host_step`.

Runs the engine (scheduler, block manager, look-ahead, step inputs, postprocessing, statistics) around a
stand-in runner that builds each step's inputs as the model runner does (on the CPU) and returns a token
for every sequence at once, so the time per step is the host's alone. At a batch where this exceeds the
GPU's time per step, the GPU waits for the host (`step_timeline` shows it: the host's wait nears zero).
Prints microseconds per decode step at each batch size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from allmos.batch import LaunchedStep, ScheduledBatch, StepOutput
from allmos.config import EngineConfig
from allmos.engine.engine import Engine
from allmos.engine.step_inputs import build_step_inputs
from allmos.sampling_params import SamplingParams

ARCH = {  # the shape matters only to the config checks: no weights are made
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "vocab_size": 1000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1e6,
}
TOKEN = 7


class HostOnlyRunner:
    """Builds each step's inputs like ModelRunner.prepare, on the CPU, and 'samples' TOKEN for every row."""

    closed = False

    def __init__(self, config: EngineConfig, num_blocks: int):
        self.config = config
        self.num_blocks = num_blocks

    def launch(self, batch: ScheduledBatch, prev: LaunchedStep | None = None) -> LaunchedStep:
        prev_tokens = prev.tokens if prev is not None else None
        build_step_inputs(batch, self.config.block_size, torch.device("cpu"), None, prev_tokens)
        tokens = torch.full((len(batch),), TOKEN, dtype=torch.int64)
        return LaunchedStep(batch, tokens, None, None)

    def collect(self, step: LaunchedStep) -> StepOutput:
        return StepOutput(step.tokens.tolist())

    def describe(self) -> dict[str, Any]:
        return {
            "attention_backend": "-",
            "kv_store": "-",
            "kv_store_in_rope": False,
            "rope_in_qkv": False,
            "rope": "-",
            "linear": "-",
            "sampler": "-",
            "num_kv_blocks": self.num_blocks,
            "kv_cache_dtype": "-",
        }


def host_us_per_step(batch: int, context: int, steps: int, switches: dict) -> float:
    blocks = batch * (-(-(context + steps + 16) // 256)) + 16
    config = EngineConfig.create(None, architecture=ARCH, device="cpu", num_kv_blocks=blocks, **switches)
    engine = Engine(config, lambda c, hf, weights, stats: HostOnlyRunner(c, blocks))
    params = SamplingParams(temperature=0, max_tokens=steps + 8, ignore_eos=True)
    for i in range(batch):
        engine.add_request([1 + (i + t) % 900 for t in range(context)], params)
    while engine.stats.steps("decode") < 4:
        engine.step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    switches = {"async_scheduling": True, "prefix_caching": True}
    rows = [
        {"batch": b, "host_us_per_step": host_us_per_step(b, args.context, args.steps, switches)} for b in args.batch
    ]
    for row in rows:
        print(f"batch {row['batch']:4d}: {row['host_us_per_step']:8.1f} us of host work per decode step")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"context": args.context, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
