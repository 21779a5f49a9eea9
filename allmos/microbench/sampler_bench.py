"""The Triton sampler's chunking (`programs_per_sm`) at decode batch sizes (needs a CUDA GPU).

    python -m allmos.microbench.sampler_bench --out FILE [--batches 1,16,102,256] [--programs 4,8,16,32]

Times gumbel_max_sample on bf16 logits of Qwen3's vocabulary (151,936) at each batch size and each
target number of (row, chunk) programs per SM, as CUDA-graph replays rotating over enough logits copies
that each call reads its logits from HBM, and checks that every chunking samples the same tokens; and
the default chunking with Triton's accurate log2 instead of the hardware's approximate one.
"""

from __future__ import annotations

import argparse
import json

import torch

from allmos.microbench.gpu_timing import environment, gbps, graph_ms, num_sets
from allmos.sampling.kernels.gumbel_max import gumbel_max_sample

VOCAB = 151936


def bench_batch(batch: int, programs: list[int]) -> dict:
    gen = torch.Generator(device="cuda").manual_seed(batch)
    num_bytes = 2 * batch * VOCAB
    logits = [
        torch.randn(batch, VOCAB, generator=gen, device="cuda").to(torch.bfloat16) for _ in range(num_sets(num_bytes))
    ]
    temperatures = torch.full((batch,), 0.6, device="cuda")
    seed = torch.ones(1, dtype=torch.int64, device="cuda")  # made once: an int would add a fill per call
    reference = gumbel_max_sample(logits[0], temperatures, seed=seed, programs_per_sm=programs[0])
    row = {"batch": batch, "bytes": num_bytes}
    for p in programs:
        if not torch.equal(gumbel_max_sample(logits[0], temperatures, seed=seed, programs_per_sm=p), reference):
            raise AssertionError(f"programs_per_sm={p} sampled other tokens than {programs[0]} at batch {batch}")
        calls = [lambda x=x, p=p: gumbel_max_sample(x, temperatures, seed=seed, programs_per_sm=p) for x in logits]
        ms = graph_ms(calls, num_bytes)
        row[f"p{p}_us"], row[f"p{p}_gbps"] = ms * 1e3, gbps(num_bytes, ms)
    accurate = [lambda x=x: gumbel_max_sample(x, temperatures, seed=seed, fast_log=False) for x in logits]
    row["accurate_log_us"] = graph_ms(accurate, num_bytes) * 1e3  # the default chunking, Triton's own log2
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None)
    parser.add_argument("--batches", default="1,16,102,256")
    parser.add_argument("--programs", default="4,8,16,32", help="programs_per_sm values; the first is the reference")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("sampler_bench needs a CUDA GPU")
    programs = [int(p) for p in args.programs.split(",")]
    rows = [bench_batch(int(b), programs) for b in args.batches.split(",")]
    for r in rows:
        print(
            f"batch {r['batch']:4d}: "
            + "  ".join(f"p{p} {r[f'p{p}_us']:7.1f} us ({r[f'p{p}_gbps']:5.0f} GB/s)" for p in programs)
            + f"  accurate log2 {r['accurate_log_us']:7.1f} us"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"environment": environment(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
