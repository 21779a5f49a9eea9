"""Stand-ins for the attention layer's collaborators that record what a step asked of them (the attention
layer's plumbing tests: test_fuse_rope.py, test_qkv_rope_plumbing.py)."""

from allmos.attention.backend import AttentionBackend, HeadShape
from allmos.registry import BuildContext

HEADS = HeadShape(4, 2, 16, 0.25)
# a one-layer Qwen3 for config validation (random weights)
TINY = dict(
    architectures=["Qwen3ForCausalLM"], model_type="qwen3", vocab_size=64, hidden_size=32, intermediate_size=64,
    num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=256,
)  # fmt: skip


class RecordingBackend(AttentionBackend):
    """Records which entry point a step reached."""

    def __init__(self, fuses: bool):
        super().__init__(None, BuildContext(heads=HEADS))
        self.fuses, self.calls = fuses, []

    def fuses_rope(self):
        return self.fuses

    def forward(self, q, k, v, k_cache, v_cache, meta, scales=None):
        self.calls.append(("forward", q, k, v))
        return q

    def forward_decode_fused(self, q, k, v, k_cache, v_cache, meta, rope):
        self.calls.append(("fused", q, k, v, rope))
        return q


class RecordingRope:
    def __init__(self):
        self.calls = 0

    def apply(self, positions, q, k, q_norm, k_norm, rotary, kv=None):
        self.calls += 1
        return q + 1, k + 1


class RecordingStore:
    def __init__(self):
        self.calls = 0

    def write(self, *args):
        self.calls += 1
