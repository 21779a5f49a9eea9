"""Which FP8 scaling for the KV cache: K/V magnitudes and the round-trip error of candidate schemes,
measured on the K/V a model really writes (its paged cache after a prefill), on CPU.

    python -m allmos.microbench.kv_fp8_scales                   # SmolLM2-135M (real weights, offline)
    python -m allmos.microbench.kv_fp8_scales --model random    # Qwen3-0.6B's shape, random weights

Schemes: `static 1.0` (one scale for everything, vLLM's default without calibration); `per (layer, kv
head)` (absmax / 448 of the first half of the tokens, applied to the second half: a calibration that
misses later outliers saturates); `per (token, kv head)` (absmax / 448 of each row, kept beside the
pages: kv_store.fp8_scale=null, the default); also on K scaled 1000x up and down. Error: the relative
RMS error of the dequantized values over all layers, the worst layer's, and the share of values beyond
the scheme's range (saturated).
"""

from __future__ import annotations

import argparse
import json

import torch

from allmos.kv_store import fp8

TEXT = (
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
    "movable metal type, oil-based ink and a wooden screw press into a system that could produce books "
    "quickly and cheaply. Before that, manuscripts were copied by hand, a slow process that kept written "
    "knowledge in the hands of a few. Within fifty years presses were running in more than two hundred "
    "cities across Europe, and millions of volumes had been printed. Scholars could now compare identical "
    "copies of a text, errors could be corrected in later editions, and ideas travelled faster than ever "
    "before. The consequences reached into religion, science and politics, and historians still debate "
    "how much of the modern world grew from that one invention."
)
BLOCK = 16


def written_kv(model: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """K and V [layers, tokens, kv_heads, head_dim] (float32) as a prefill of TEXT writes them."""
    from allmos import LLM, SamplingParams

    options = dict(device="cpu", dtype="float32", block_size=BLOCK, max_model_len=1024, max_num_batched_tokens=1024)
    if model == "random":
        from omegaconf import OmegaConf

        arch = OmegaConf.to_container(OmegaConf.load("conf/model/qwen3-0.6b.yaml").architecture)
        llm = LLM(None, architecture=arch, random_weights="always", num_kv_blocks=48, seed=seed, **options)
        tokens = torch.randint(0, arch["vocab_size"], (512,), generator=torch.Generator().manual_seed(seed)).tolist()
        label = "Qwen3-0.6B shape, random weights (init std 0.02), 512 random tokens"
    else:
        from allmos.models.prepare import prepare_model

        llm = LLM(prepare_model("smollm2"), num_kv_blocks=48, **options)
        tokens = llm.tokenizer.encode(TEXT)
        label = f"SmolLM2-135M-Instruct (real weights), {len(tokens)} tokens of English text"
    tables, manager = [], llm.engine.block_manager
    free = manager.free
    manager.free = lambda seq: (tables.append(list(seq.block_table)), free(seq))  # its pages, before freeing
    llm.run_requests([tokens], [SamplingParams(temperature=0, max_tokens=1)])
    cache = llm.engine.runner.kv_cache.values  # [2, layers, blocks, block, heads, dim]
    pages = torch.tensor(tables[0])
    k, v = (cache[i][:, pages].flatten(1, 2)[:, : len(tokens)].float() for i in (0, 1))
    return k, v, label


def round_trip(x: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x's dequantized round trip through FP8 with per-row `scales`, and which values saturated."""
    limit = scales[..., None] * fp8.FP8_MAX * (1 + 1e-6)  # a row's own absmax is in range, whatever the rounding
    return fp8.dequantize(fp8.quantize(x, scales), scales, torch.float32), x.abs() > limit


def schemes(x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Each scheme's (values it is judged on, their round trip, saturated): x [layers, tokens, heads, dim]."""
    half = x.shape[1] // 2
    later = x[:, half:]
    calibrated = x[:, :half].abs().amax(dim=(1, 3)) / fp8.FP8_MAX  # [layers, heads]
    return {
        "static 1.0": (x, *round_trip(x, torch.ones(x.shape[:-1]))),
        "per (layer, kv head), calibrated": (later, *round_trip(later, calibrated[:, None].expand(later.shape[:-1]))),
        "per (token, kv head)": (x, *round_trip(x, fp8.row_scales(x, None))),
    }


def relative_rms(x: torch.Tensor, back: torch.Tensor, dims) -> torch.Tensor:
    return ((back - x).pow(2).mean(dims) / x.pow(2).mean(dims)).sqrt()


def measure(x: torch.Tensor) -> dict:
    out = {
        "absmax": x.abs().max().item(),
        "absmax_per_layer": [round(v, 2) for v in x.abs().amax(dim=(1, 2, 3)).tolist()],
        "share_beyond_448": (x.abs() > fp8.FP8_MAX).float().mean().item(),
    }
    for name, (values, back, saturated) in schemes(x).items():
        out[name] = {
            "rel_rms": relative_rms(values, back, (0, 1, 2, 3)).item(),
            "worst_layer_rel_rms": relative_rms(values, back, (1, 2, 3)).max().item(),
            "saturated": saturated.float().mean().item(),
        }
    return out


def table(results: dict) -> str:
    lines = []
    for side, m in results.items():
        lines.append(f"{side}: absmax {m['absmax']:.3g}, share beyond 448 {m['share_beyond_448']:.2g}")
        lines.append(f"  {'scheme':<34} {'rel RMS':>9} {'worst layer':>12} {'saturated':>10}")
        for name in ("static 1.0", "per (layer, kv head), calibrated", "per (token, kv head)"):
            r = m[name]
            lines.append(f"  {name:<34} {r['rel_rms']:>9.4f} {r['worst_layer_rel_rms']:>12.4f} {r['saturated']:>10.2g}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "random"])
    parser.add_argument("--out", help="write the figures as JSON")
    args = parser.parse_args()
    k, v, label = written_kv(args.model)
    # The same values 1000x larger and smaller: what one scale for everything meets in models whose K/V
    # run far from 1 (outlier channels of hundreds, or tiny values among e4m3's subnormals).
    results = {"K": measure(k), "V": measure(v), "K x 1000": measure(k * 1000), "K / 1000": measure(k / 1000)}
    print(label)
    print(table(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": label, **results}, f, indent=1)


if __name__ == "__main__":
    main()
