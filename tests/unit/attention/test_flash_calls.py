"""The flash backend's calls into flash-attn, checked against a recording stand-in (flash-attn itself
is not installed here): FA2 names the page table block_table, FA3 page_table."""

import pytest
import torch

from allmos.attention.backend import HeadShape
from allmos.attention.flash import FlashBackend
from allmos.attention.metadata import AttentionMetadata


class RecordingLib:
    def __init__(self):
        self.calls = []

    def flash_attn_with_kvcache(self, q, k_cache, v_cache, **kwargs):
        self.calls.append(("with_kvcache", tuple(q.shape), kwargs))
        return q

    def flash_attn_varlen_func(self, q, k, v, *args, **kwargs):
        self.calls.append(("varlen", tuple(q.shape), kwargs))
        return q


def backend(flavor: str) -> FlashBackend:
    b = FlashBackend.__new__(FlashBackend)
    b.heads = HeadShape(4, 2, 8, 0.25)
    b.flavor, b.lib = flavor, RecordingLib()
    return b


def decode_meta() -> AttentionMetadata:
    return AttentionMetadata(
        is_prefill=False,
        slot_mapping=torch.tensor([3, 9]),
        context_lens=torch.tensor([4, 10], dtype=torch.int32),
        cu_seqlens_q=torch.tensor([0, 1, 2], dtype=torch.int32),
        block_tables=torch.tensor([[0], [1]], dtype=torch.int32),
        max_seqlen_q=1,
        max_seqlen_k=10,
        query_lens_host=[1, 1],
        context_lens_host=[4, 10],
        block_size=256,
    )


@pytest.mark.parametrize("flavor,table", [("flash_attn", "block_table"), ("flash_attn_interface", "page_table")])
def test_decode_passes_the_page_table_under_the_flavors_name(flavor, table):
    b, meta = backend(flavor), decode_meta()
    q = torch.zeros(2, 4, 8)
    out = b.forward(q, None, None, "k_cache", "v_cache", meta)
    assert out.shape == q.shape
    ((kind, shape, kwargs),) = b.lib.calls
    assert kind == "with_kvcache" and shape == (2, 1, 4, 8)
    assert kwargs[table] is meta.block_tables and kwargs["cache_seqlens"] is meta.context_lens
    assert kwargs["softmax_scale"] == 0.25 and kwargs["causal"] is True
