"""Tiny random Hugging Face checkpoints for tests, saved with transformers' own save_pretrained."""

from __future__ import annotations

import torch

TINY = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=1024,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=511,
)


def tiny_config(family: str = "qwen3", **overrides):
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    cls = {"qwen3": Qwen3Config, "qwen2": Qwen2Config, "llama": LlamaConfig}[family]
    values = {**TINY, **overrides}
    if family == "qwen3":
        values.setdefault("tie_word_embeddings", True)
    return cls(**values)


def save_tiny_model(folder, family: str = "qwen3", seed: int = 0, init_std: float = 0.5, **overrides) -> str:
    """A random model whose logits are spread wide (large init), so greedy ties are negligible."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = tiny_config(family, initializer_range=init_std, **overrides)
    model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(str(folder))
    return str(folder)


def hf_greedy(folder: str, prompts: list[list[int]], max_new_tokens: int, dtype=torch.float64) -> list[list[int]]:
    """transformers' own greedy generate, one prompt at a time (no padding effects); stops at EOS."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
    outputs = []
    for prompt in prompts:
        ids = torch.tensor([prompt])
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=0,
        )
        outputs.append(out[0, len(prompt) :].tolist())
    return outputs
