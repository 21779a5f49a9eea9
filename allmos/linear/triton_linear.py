from dataclasses import dataclass

from allmos.linear.base import LinearPlugin
from allmos.registry import PluginOptions, make_options, register
from allmos.triton_support import TritonPlugin, check_pdl_option


@dataclass
class TritonLinearOptions(PluginOptions):
    pdl: bool = True  # GEMVs launch while the previous kernel runs (programmatic dependent launch, sm_90+)


@register("linear", "triton", options=TritonLinearOptions)
class TritonLinear(TritonPlugin, LinearPlugin):
    """Single-token steps (batch-1 decode) run Triton GEMV kernels that read each weight once with the
    preceding op fused into their input load: add+RMSNorm before qkv and gate_up, SiLU-and-mul before
    down, so a layer launches three kernels fewer; o and the LM head run the plain GEMV. Steps of more
    tokens use the unfused path (cuBLAS): from 2 rows on its tensor-core tiles win on most projections
    (allmos.bench.linear_bench). With `pdl` each GEMV is launched before the previous kernel ends and
    loads its first weight chunk while waiting for it."""

    def __init__(self, options):
        super().__init__(options)
        from allmos.layers import triton_skinny_linear

        self.kernels = triton_skinny_linear
        self.pdl = options.pdl

    @classmethod
    def check(cls, config) -> None:
        super().check(config)
        options = make_options("linear", cls.plugin_name, config.linear.options)
        check_pdl_option("linear.pdl", options.pdl, config.resolved_device)

    def project(self, proj, x):
        if x.shape[0] != 1:
            return proj(x)
        return proj.finish(self.kernels.skinny_linear(x, proj.weight, pdl=self.pdl))

    def norm_project(self, norm, x, residual, proj):
        if x.shape[0] != 1:
            return super().norm_project(norm, x, residual, proj)
        y, residual = self.kernels.add_rms_norm_linear(x, residual, norm.weight, norm.eps, proj.weight, pdl=self.pdl)
        return proj.finish(y), residual

    def act_project(self, act, gate_up, proj):
        if gate_up.shape[0] != 1:
            return super().act_project(act, gate_up, proj)
        return proj.finish(self.kernels.silu_mul_linear(gate_up, proj.weight, pdl=self.pdl))
