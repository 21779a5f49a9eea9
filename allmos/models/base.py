"""What every registered model is: a causal LM built by the loader from its Hugging Face config and a
ModelContext, registered under its `architectures` name (`@register("model", "Qwen3ForCausalLM")`)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from allmos.attention.metadata import AttentionMetadata


class CausalLM(nn.Module, ABC):
    plugin_kind = ""  # set by `register`
    plugin_name = ""

    @abstractmethod
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Hidden states [num_tokens, hidden] of the step's tokens."""

    @abstractmethod
    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[rows, hidden] -> [rows, vocab]."""

    @abstractmethod
    def attention_layers(self) -> list:
        """Each layer's PagedAttention, in order (the runner binds the KV cache to them)."""
