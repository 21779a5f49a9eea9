from dataclasses import dataclass

from allmos.layers.linear import ShardedLinear
from allmos.linear.base import LinearPlugin
from allmos.registry import PluginOptions, register
from allmos.triton_shared.support import TritonPlugin, check_pdl_option


@dataclass
class TritonLinearOptions(PluginOptions):
    pdl: bool = True  # kernels launch while the previous kernel runs (programmatic dependent launch, sm_90+)
    gemm: bool = True  # steps of 2..32 tokens: Triton split-K tensor-core GEMMs (false: cuBLAS)


@register("linear", "triton", options=TritonLinearOptions)
class TritonLinear(TritonPlugin, LinearPlugin):
    """Single-token steps (batch-1 decode) run Triton GEMV kernels that read each weight once with the
    preceding op fused into their input load: add+RMSNorm before qkv and gate_up, SiLU-and-mul before
    down, so a layer launches three kernels fewer; o and the LM head run the plain GEMV. With `gemm`,
    steps of 2..MAX_GEMM_ROWS tokens run the layer projections (not the LM head) as Triton tensor-core
    GEMMs with the same fusions, splitting K so that the few output tiles of these row counts still
    fill the GPU (allmos.linear.kernels.gemm); larger steps, the LM head beyond one row, and all
    steps without `gemm`, use the unfused path (cuBLAS). With `pdl` each GEMV is launched before the
    previous kernel ends and loads its first weight chunk while waiting for it; the GEMMs launch plainly,
    since with PDL their waiting programs hold the SMs' shared memory from the running kernel
    (allmos.microbench.gemm_bench: 7.4 -> 8.2 us back to back at 2 rows). At one row the qkv GEMV can
    also do the rope kernel's work in its epilogue (rope.fuse_qkv: allmos.linear.kernels.gemv_rope)."""

    takes_rope = True

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        from allmos.linear.kernels import gemm, gemv, gemv_rope

        self.kernels = gemv
        self.rope_kernels = gemv_rope
        self.gemms = gemm
        self.pdl = options.pdl
        self.gemm = options.gemm
        self.counters = {}  # device -> the split-K counters of the GEMMs launched there
        self.rope_counters = {}  # device -> the per-head counters of the qkv GEMV's rope epilogue

    @classmethod
    def check(cls, options, where) -> None:
        super().check(options, where)
        check_pdl_option("linear.pdl", options.pdl, where.device)

    def _gemm_options(self, proj, x) -> dict | None:
        """Launch options of the multi-row GEMM when it takes this projection, else None."""
        if not (self.gemm and isinstance(proj, ShardedLinear) and x.shape[0] <= self.gemms.MAX_GEMM_ROWS):
            return None
        if x.device not in self.counters:
            self.counters[x.device] = self.gemms.new_split_counters(x.device)
        return {"counters": self.counters[x.device], "pdl": False}

    def project(self, proj, x):
        if x.shape[0] == 1:
            return proj.finish(self.kernels.skinny_linear(x, proj.weight, pdl=self.pdl))
        gemm = self._gemm_options(proj, x)
        if gemm is None:
            return proj(x)
        return proj.finish(self.gemms.rows_linear(x, proj.weight, **gemm))

    def norm_project(self, norm, x, residual, proj):
        if x.shape[0] == 1:
            y, residual = self.kernels.add_rms_norm_linear(
                x, residual, norm.weight, norm.eps, proj.weight, pdl=self.pdl
            )
            return proj.finish(y), residual
        gemm = self._gemm_options(proj, x)
        if gemm is None:
            return super().norm_project(norm, x, residual, proj)
        y, residual = self.gemms.add_rms_norm_rows_linear(x, residual, norm.weight, norm.eps, proj.weight, **gemm)
        return proj.finish(y), residual

    def norm_project_qkv(self, norm, x, residual, proj, rope):
        if x.shape[0] != 1:
            return super().norm_project_qkv(norm, x, residual, proj, rope)
        qkv, residual = self.rope_kernels.add_rms_norm_qkv_rope(
            x, residual, norm.weight, norm.eps, proj.weight, proj.bias, rope, self._rope_counters(x.device, rope),
            pdl=self.pdl,
        )  # fmt: skip
        return qkv, residual, True

    def _rope_counters(self, device, rope):
        """The device's counters, allocated once (the first step runs before any CUDA-graph capture)."""
        heads = rope.num_heads + 2 * rope.num_kv_heads
        if device not in self.rope_counters or self.rope_counters[device].numel() < heads:
            self.rope_counters[device] = self.rope_kernels.rope_counters(heads, device)
        return self.rope_counters[device]

    def act_project(self, act, gate_up, proj):
        if gate_up.shape[0] == 1:
            return proj.finish(self.kernels.silu_mul_linear(gate_up, proj.weight, pdl=self.pdl))
        gemm = self._gemm_options(proj, gate_up)
        if gemm is None:
            return super().act_project(act, gate_up, proj)
        return proj.finish(self.gemms.silu_mul_rows_linear(gate_up, proj.weight, **gemm))
