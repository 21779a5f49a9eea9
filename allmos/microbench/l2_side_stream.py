"""The batch-1 layer chain with a second stream that streams weights into the L2 ahead of the kernels (needs a
CUDA GPU).

    python -m allmos.microbench.l2_side_stream [--layers 28] [--context 0] [--ahead 2,3] [--modes bulk,load]
        [--programs 16] [--out DIR]

The question before a `linear` option that would do this in the engine's batch-1 graph: at one row each GEMV
is a few microseconds long and reads its weights from HBM between a ramp-up and a tail, so HBM idles between
kernels (layer_chain: 16.3 us a layer against 10.4 at the copy bandwidth on an H100). Here the main stream runs
layer_chain's kernels unchanged (norm+qkv with the rope epilogue when there is a context, the paged decode
attention, o, norm+gate_up, SiLU+down) and a side stream asks for the tensors of the kernel `ahead` steps on:
once step i has finished, the side stream fetches what step i + ahead reads, so it streams while step i + 1 runs
(ahead 1 would fetch what the running kernel is already reading: refused). Both streams are captured in one CUDA
graph; the main kernels do not wait for the side stream, so the prefetches change timing, never results (checked:
the chain's output with each variant is compared bit for bit with the chain without a side stream).

How the side stream fetches (--modes):
- bulk: `--programs` programs of 128 threads, one cp.async.bulk.prefetch.L2 a thread (the copy engine moves the
  bytes; the programs take almost no SM time);
- load: plain loads that keep their lines in the L2 (evict_last), summed into a scratch word so they are kept; one
  program per 16 KB, which compete with the main kernels for the SMs.

The figure is microseconds a layer (median of CUDA-graph replays), against the chain without a side stream,
which is timed first and again last. On an H100 every variant was 1.4-1.8x slower than the chain without it
(docs/results/2026-12-08-h100-session27).
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import triton
import triton.language as tl

from allmos.triton_shared.l2_prefetch import prefetch_to_l2

MODES = ("bulk", "load")
PREFETCH_THREADS = 128
LOAD_BLOCK = 4096  # int32 words a load program reads


@triton.jit
def _bulk_prefetch_kernel(ptr, nbytes, PIECES: tl.constexpr):
    """Program p asks the L2 for its share of [ptr, ptr + nbytes): PIECES pieces of 16-byte multiples, one a
    thread (PIECES must be the program's thread count, see l2_prefetch.prefetch_rows)."""
    share = tl.cdiv(tl.cdiv(nbytes, tl.num_programs(0)), PIECES * 16) * PIECES * 16
    piece = share // PIECES
    start = tl.program_id(0).to(tl.int64) * share + tl.arange(0, PIECES).to(tl.int64) * piece
    size = tl.minimum(tl.maximum(nbytes - start, 0), piece).to(tl.int32)
    prefetch_to_l2(ptr + start, size)


@triton.jit
def _load_to_l2_kernel(ptr, n_words, scratch_ptr, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    words = tl.load(ptr + offs, mask=offs < n_words, other=0, eviction_policy="evict_last")
    tl.store(scratch_ptr + tl.program_id(0) % 64, tl.sum(words, 0))


def check_fetchable(tensors: list[torch.Tensor]) -> None:
    """The fetches read each tensor as one span of whole 16-byte pieces (bulk prefetches) or int32 words."""
    for t in tensors:
        if not t.is_contiguous() or (t.numel() * t.element_size()) % 16:
            shape = tuple(t.shape)
            raise ValueError(f"the side stream fetches contiguous tensors of whole 16-byte pieces; got {shape}")


def prefetch(tensors: list[torch.Tensor], mode: str, scratch: torch.Tensor, programs: int) -> None:
    """Enqueue the fetch of each tensor (check_fetchable) into the L2 on the current stream."""
    for t in tensors:
        if mode == "bulk":
            nbytes = t.numel() * t.element_size()
            _bulk_prefetch_kernel[(programs,)](
                t.view(torch.int8), nbytes, PIECES=PREFETCH_THREADS, num_warps=PREFETCH_THREADS // 32
            )
        else:
            words = t.view(torch.int32)
            grid = (triton.cdiv(words.numel(), LOAD_BLOCK),)
            _load_to_l2_kernel[grid](words, words.numel(), scratch, BLOCK=LOAD_BLOCK)


def prefetch_plan(reads: list[list], ahead: int) -> tuple[list[int], dict[int, int]]:
    """(the steps fetched before the chain starts, {step i: the step fetched once step i has finished}) for a chain
    whose step i reads the tensors reads[i]; steps that read nothing are never fetched."""
    if ahead < 2:
        raise ValueError(f"ahead must be >= 2 (1 would fetch what the running kernel reads); got {ahead}")
    first = [j for j in range(min(ahead, len(reads))) if reads[j]]
    after = {i: i + ahead for i in range(len(reads) - ahead) if reads[i + ahead]}
    return first, after


def chain_steps(weights: list[dict], configs: dict, pdl: bool) -> list[tuple[list[torch.Tensor], object]]:
    """layer_chain's kernels as (the tensors the step reads from HBM, step(state) -> state), in launch order."""
    from allmos.linear.kernels.gemv import add_rms_norm_linear, silu_mul_linear, skinny_linear
    from allmos.microbench.layer_chain import EPS, attend, project_qkv

    def layer_steps(w):
        def qkv(s):
            out, r, done = project_qkv(s["h"], s["r"], w, configs, pdl)
            return {**s, "qkv": out, "r": r, "rope_done": done}

        def attention(s):
            return {**s, "a": attend(s["qkv"], w, configs["attention"], pdl, s["rope_done"])}

        def o(s):
            return {**s, "o": skinny_linear(s["a"], w["o"], pdl=pdl, **configs["o"])}

        def gate_up(s):
            out, r = add_rms_norm_linear(s["o"], s["r"], w["norm2"], EPS, w["gate_up"], pdl=pdl, **configs["gate_up"])
            return {**s, "gu": out, "r": r}

        def down(s):
            return {**s, "h": silu_mul_linear(s["gu"], w["down"], pdl=pdl, **configs["down"])}

        kv = [w["k_cache"], w["v_cache"]] if "k_cache" in w else []  # no attention kernel without a context
        return [([w["qkv"]], qkv), (kv, attention), ([w["o"]], o), ([w["gate_up"]], gate_up), ([w["down"]], down)]

    return [step for w in weights for step in layer_steps(w)]


class SideStreamChain:
    """The chain as one callable; with a mode, a side stream fetches into the L2 as prefetch_plan says."""

    def __init__(self, weights, configs, mode: str | None, ahead: int = 2, programs: int = 16):
        self.steps = chain_steps(weights, configs, pdl=True)
        self.mode, self.programs = mode, programs
        self.plan = prefetch_plan([reads for reads, _ in self.steps], ahead) if mode else ([], {})
        for reads, _ in self.steps:
            check_fetchable(reads)
        self.side = torch.cuda.Stream()
        self.scratch = torch.zeros(64, dtype=torch.int32, device="cuda")

    def fetch(self, step: int) -> None:
        with torch.cuda.stream(self.side):
            prefetch(self.steps[step][0], self.mode, self.scratch, self.programs)

    def __call__(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        main = torch.cuda.current_stream()
        first, after = self.plan
        if self.mode:
            self.side.wait_stream(main)
            for j in first:
                self.fetch(j)
        state = {"h": x, "r": residual}
        for i, (_, step) in enumerate(self.steps):
            state = step(state)
            if i in after:
                done = torch.cuda.Event()
                done.record(main)
                self.side.wait_event(done)
                self.fetch(after[i])
        if self.mode:
            main.wait_stream(self.side)
        return state["h"]


def us_per_layer(chain: SideStreamChain, inputs: tuple, layers: int, replays: int = 20) -> float:
    from allmos.microbench.gpu_timing import replay_ms

    times = sorted(ms * 1e3 / layers for ms in replay_ms(lambda: chain(*inputs), lambda: chain(*inputs), replays))
    return times[len(times) // 2]


def parse_ahead(text: str) -> list[int]:
    values = [int(v) for v in text.split(",")]
    if any(v < 2 for v in values):
        raise ValueError(f"--ahead: each must be >= 2 (1 would fetch what the running kernel reads); got {text}")
    return values


def parse_modes(text: str) -> list[str]:
    modes = text.split(",")
    if any(m not in MODES for m in modes):
        raise ValueError(f"--modes: each must be one of {', '.join(MODES)}; got {text}")
    return modes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--context", type=int, default=0, help="cached tokens the attention reads (0: none)")
    parser.add_argument("--ahead", default="2,3", help="how many steps ahead the side stream fetches, a variant each")
    parser.add_argument("--modes", default="bulk,load", help="how the side stream fetches, a variant each")
    parser.add_argument("--programs", type=int, default=16, help="programs of the bulk mode's prefetch kernel")
    parser.add_argument("--out", help="directory for l2_side_stream.json")
    args = parser.parse_args()
    try:
        aheads, modes = parse_ahead(args.ahead), parse_modes(args.modes)
    except ValueError as err:
        parser.error(str(err))
    if not torch.cuda.is_available():
        parser.error("l2_side_stream needs a CUDA GPU")
    from allmos.microbench.gpu_timing import environment
    from allmos.microbench.kernel_bench import bench_copy
    from allmos.microbench.layer_chain import SHAPES, defaults, layer_weights, weights_floor_us

    weights = layer_weights(args.layers, args.context)
    copy_gbps = bench_copy()["gbps"]
    floor_us = weights_floor_us(args.context, copy_gbps)
    env = environment()
    print(f"{env['device']}: weights and {args.context} tokens of K/V at copy ({copy_gbps:.0f} GB/s):", end=" ")
    print(f"{floor_us:.2f} us/layer")
    configs = defaults() | ({"qkv_rope": True} if args.context else {})
    x, residual = (torch.randn(1, SHAPES["qkv"][1], dtype=torch.bfloat16, device="cuda") for _ in "xr")
    plain = SideStreamChain(weights, configs, None)
    want = plain(x, residual).clone()
    rows = [{"variant": "no side stream", "us_per_layer": us_per_layer(plain, (x, residual), args.layers)}]
    print(f"no side stream: {rows[0]['us_per_layer']:.2f} us/layer", flush=True)
    for mode in modes:
        for ahead in aheads:
            chain = SideStreamChain(weights, configs, mode, ahead, args.programs)
            identical = bool(torch.equal(chain(x, residual), want))
            us = us_per_layer(chain, (x, residual), args.layers)
            rows.append({"variant": f"{mode}, ahead {ahead}", "us_per_layer": us, "output_identical": identical})
            ratio = us / rows[0]["us_per_layer"]
            print(f"{mode}, ahead {ahead}: {us:.2f} us/layer ({ratio:.3f}x), output identical: {identical}", flush=True)
    rows.append({"variant": "no side stream, again", "us_per_layer": us_per_layer(plain, (x, residual), args.layers)})
    print(f"no side stream, again: {rows[-1]['us_per_layer']:.2f} us/layer", flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        result = {"environment": env, "copy_gbps": copy_gbps, "context": args.context, "floor_us": floor_us}
        with open(os.path.join(args.out, "l2_side_stream.json"), "w") as f:
            json.dump(result | {"programs": args.programs, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
