from dataclasses import dataclass

from allmos.registry import PluginOptions, register
from allmos.rope.base import QKRope
from allmos.triton_shared.support import TritonPlugin, check_pdl_option


@dataclass
class TritonRopeOptions(PluginOptions):
    pdl: bool = True  # the kernel launches while the previous one runs (programmatic dependent launch, sm_90+)
    # With linear=triton, one-token decode steps do this kernel's work (and its K/V store) in the qkv
    # projection's epilogue, so the kernel does not run for them: one launch per layer fewer (on by default:
    # the batch-1 step 5% shorter on an H100, 2026-12-06).
    fuse_qkv: bool = True


@register("rope", "triton", options=TritonRopeOptions)
class TritonQKRope(TritonPlugin, QKRope):
    """One Triton kernel per layer normalises and rotates q and k in place (in the packed qkv
    output): one launch where the torch ops take three or more. It can also write K/V into the paged
    cache (kv_store=triton's `fuse_rope`), saving the store's launch."""

    writes_kv = True

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        from allmos.rope.kernels.qk_rope import qk_norm_rope_triton

        self.kernel = qk_norm_rope_triton

    @classmethod
    def check(cls, options, where) -> None:
        super().check(options, where)
        check_pdl_option("rope.pdl", options.pdl, where.device)

    def fuses_into_qkv(self) -> bool:
        return self.options.fuse_qkv

    def apply(self, positions, q, k, q_norm, k_norm, rotary, kv=None):
        q_weight = None if q_norm is None else q_norm.weight
        k_weight = None if k_norm is None else k_norm.weight
        eps = 0.0 if q_norm is None else q_norm.eps
        cos, sin = rotary.cos, rotary.sin
        return self.kernel(positions, q, k, q_weight, k_weight, eps, cos, sin, kv, pdl=self.options.pdl)
