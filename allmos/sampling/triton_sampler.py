from allmos.registry import register
from allmos.sampling.base import Sampler
from allmos.triton_shared.support import TritonPlugin


@register("sampler", "triton")
class TritonSampler(TritonPlugin, Sampler):
    """Gumbel-max sampling fused into two Triton kernels: the noise is drawn in registers (Philox)
    instead of written to a [batch, vocab] tensor, and each row's vocabulary is spread over many
    programs. Draws differ from `gumbel`'s (another random stream), not their distribution. The Philox
    seed is read from the step's seed tensor, so the sampler can be captured in the decode graphs."""

    capturable = True

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        from allmos.sampling.kernels.gumbel_max import gumbel_max_sample

        self.kernel = gumbel_max_sample

    def forward(self, logits, temperatures, seed):
        return self.kernel(logits, temperatures, seed)
