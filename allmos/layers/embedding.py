"""Vocabulary-parallel embedding and LM head: each rank holds a contiguous slice of the vocabulary."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from allmos.layers.linear import check_shape
from allmos.layers.parallel import ParallelInfo


class VocabParallelEmbedding(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, tp: ParallelInfo):
        super().__init__()
        self.tp = tp
        self.vocab_size = vocab_size
        self.local_vocab = (vocab_size + tp.size - 1) // tp.size
        self.vocab_start = tp.rank * self.local_vocab
        self.weight = nn.Parameter(torch.empty(self.local_vocab, hidden), requires_grad=False)
        self.weight.weight_loader = self.weight_loader
        self.weight.checkpoint_shape = self.checkpoint_shape

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> torch.Tensor:
        check_shape("(vocabulary)", self.checkpoint_shape(param), loaded.shape)
        piece = loaded[self.vocab_start : self.vocab_start + self.local_vocab]
        param.data[piece.shape[0] :].zero_()
        filled = param.data[: piece.shape[0]]
        filled.copy_(piece)
        return filled

    def checkpoint_shape(self, param: nn.Parameter, shard_id=None) -> tuple[int, ...]:
        return (self.vocab_size, param.shape[1])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.tp.size == 1:
            return F.embedding(ids, self.weight)
        local = ids - self.vocab_start
        inside = (local >= 0) & (local < self.local_vocab)
        out = F.embedding(local.clamp(0, self.local_vocab - 1), self.weight) * inside.unsqueeze(-1)
        return self.tp.all_reduce(out)


class ParallelLMHead(VocabParallelEmbedding):
    """Logits for the vocabulary slice of this rank, gathered to full logits on every rank."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.finish(F.linear(hidden, self.weight))

    def finish(self, logits: torch.Tensor) -> torch.Tensor:
        """After the matmul (however computed, see allmos.linear): gather the ranks' vocabulary slices."""
        logits = self.tp.all_gather_last_dim(logits)
        return logits[..., : self.vocab_size]
