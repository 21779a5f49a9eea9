"""The decoder shared by the Llama family (Llama, Qwen2, Qwen3): families differ only in flags.

Module and parameter names follow Hugging Face's, except the packed projections listed in
`PACKED`, so checkpoints load by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from allmos.attention.metadata import AttentionMetadata
from allmos.layers.embedding import ParallelLMHead, VocabParallelEmbedding
from allmos.layers.linear import MergedColumnParallelLinear, QKVParallelLinear, RowParallelLinear
from allmos.layers.norm import RMSNorm
from allmos.layers.rotary import RotaryEmbedding, rope_settings
from allmos.models.base import CausalLM
from allmos.models.context import ModelContext

# checkpoint name -> (our packed module, shard id)
PACKED = {
    "q_proj": ("qkv_proj", "q"),
    "k_proj": ("qkv_proj", "k"),
    "v_proj": ("qkv_proj", "v"),
    "gate_proj": ("gate_up_proj", 0),
    "up_proj": ("gate_up_proj", 1),
}


@dataclass(frozen=True)
class FamilyTraits:
    qkv_bias: bool = False
    qk_norm: bool = False


def head_dim_of(cfg: Any) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


class DecoderAttention(nn.Module):
    def __init__(self, cfg: Any, traits: FamilyTraits, ctx: ModelContext):
        super().__init__()
        tp = ctx.tp
        head_dim = head_dim_of(cfg)
        bias = traits.qkv_bias or bool(getattr(cfg, "attention_bias", False))
        self.qkv_proj = QKVParallelLinear(
            cfg.hidden_size, head_dim, cfg.num_attention_heads, cfg.num_key_value_heads, bias, tp
        )
        self.heads, self.kv_heads, self.head_dim = self.qkv_proj.local_heads, self.qkv_proj.local_kv_heads, head_dim
        self.o_proj = RowParallelLinear(
            cfg.num_attention_heads * head_dim, cfg.hidden_size, bool(getattr(cfg, "attention_bias", False)), tp
        )
        if traits.qk_norm:
            self.q_norm = RMSNorm(head_dim, cfg.rms_norm_eps, ctx.ops)
            self.k_norm = RMSNorm(head_dim, cfg.rms_norm_eps, ctx.ops)
        self.qk_norm = traits.qk_norm
        self.linear = ctx.linear
        theta, scaling = rope_settings(cfg)
        self.rotary = RotaryEmbedding(head_dim, ctx.max_positions, theta, scaling, ctx.ops)
        self.attn = ctx.make_attention(self.heads, self.kv_heads, head_dim, head_dim**-0.5)

    def project_qkv(self, norm: RMSNorm, x, residual, positions, meta) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(qkv, new residual, whether the projection applied the q/k norm, RoPE and K/V store): the qkv
        projection fused with the layer's norm before it, offered the attention prologue where it fuses."""
        rope = self.attn.qkv_rope(positions, self.norms(), self.rotary, meta)
        if rope is None:
            return (*self.linear.norm_project(norm, x, residual, self.qkv_proj), False)
        return self.linear.norm_project_qkv(norm, x, residual, self.qkv_proj, rope)

    def norms(self) -> tuple[RMSNorm | None, RMSNorm | None]:
        return (self.q_norm, self.k_norm) if self.qk_norm else (None, None)

    def forward(
        self, positions: torch.Tensor, qkv: torch.Tensor, meta: AttentionMetadata, rope_done: bool = False
    ) -> torch.Tensor:
        """From the layer's qkv projection (`project_qkv`)."""
        q_size, kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        q, k, v = qkv.split([q_size, kv_size, kv_size], dim=-1)
        q = q.view(-1, self.heads, self.head_dim)
        k = k.view(-1, self.kv_heads, self.head_dim)
        v = v.view(-1, self.kv_heads, self.head_dim)
        out = self.attn(positions, q, k, v, self.norms(), self.rotary, meta, rope_done)
        return self.linear.project(self.o_proj, out.flatten(1, 2))


class DecoderMLP(nn.Module):
    def __init__(self, cfg: Any, ctx: ModelContext):
        super().__init__()
        bias = bool(getattr(cfg, "mlp_bias", False))
        size = cfg.intermediate_size
        self.gate_up_proj = MergedColumnParallelLinear(cfg.hidden_size, [size, size], bias, ctx.tp)
        self.down_proj = RowParallelLinear(size, cfg.hidden_size, bias, ctx.tp)
        self.ops = ctx.ops
        self.linear = ctx.linear
        act = getattr(cfg, "hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"hidden_act={act!r} is not supported (only silu)")

    def forward(self, gate_up: torch.Tensor) -> torch.Tensor:
        """From the layer's gate_up projection (the layer runs it, fused with the norm before it)."""
        return self.linear.act_project(self.ops.silu_and_mul, gate_up, self.down_proj)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: Any, traits: FamilyTraits, ctx: ModelContext):
        super().__init__()
        self.self_attn = DecoderAttention(cfg, traits, ctx)
        self.mlp = DecoderMLP(cfg, ctx)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, ctx.ops)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, ctx.ops)
        self.linear = ctx.linear

    def forward(self, positions, x, residual, meta):
        attn, mlp, linear = self.self_attn, self.mlp, self.linear
        qkv, residual, rope_done = attn.project_qkv(self.input_layernorm, x, residual, positions, meta)
        x = attn(positions, qkv, meta, rope_done)
        gate_up, residual = linear.norm_project(self.post_attention_layernorm, x, residual, mlp.gate_up_proj)
        return mlp(gate_up), residual


class DecoderModel(nn.Module):
    def __init__(self, cfg: Any, traits: FamilyTraits, ctx: ModelContext):
        super().__init__()
        self.embed_tokens = VocabParallelEmbedding(cfg.vocab_size, cfg.hidden_size, ctx.tp)
        self.layers = nn.ModuleList(DecoderLayer(cfg, traits, ctx) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, ctx.ops)

    def forward(self, input_ids, positions, meta):
        x, residual = self.embed_tokens(input_ids), None
        for layer in self.layers:
            x, residual = layer(positions, x, residual, meta)
        x, _ = self.norm(x, residual)
        return x


class DecoderForCausalLM(CausalLM):
    """Subclasses set `traits` and register under their Hugging Face architecture name."""

    traits = FamilyTraits()
    packed_modules = PACKED

    def __init__(self, cfg: Any, ctx: ModelContext):
        super().__init__()
        self.config = cfg
        self.model = DecoderModel(cfg, self.traits, ctx)
        self.lm_head = ParallelLMHead(cfg.vocab_size, cfg.hidden_size, ctx.tp)
        self.linear = ctx.linear
        self.tied = bool(getattr(cfg, "tie_word_embeddings", False))
        if self.tied:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        return self.model(input_ids, positions, meta)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear.project(self.lm_head, hidden)

    def attention_layers(self):
        return [layer.self_attn.attn for layer in self.model.layers]
