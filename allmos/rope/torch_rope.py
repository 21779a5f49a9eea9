from allmos.registry import register
from allmos.rope.base import QKRope


@register("rope", "torch")
class TorchQKRope(QKRope):
    """The norms and the rotation as the model's ops (torch.compile'd with compile=true)."""

    def apply(self, positions, q, k, q_norm, k_norm, rotary, kv=None):
        if kv is not None:
            raise ValueError("rope=torch does not write the KV cache: the KV store plugin does")
        if q_norm is not None:
            q, k = q_norm(q), k_norm(k)
        return rotary(positions, q, k)
