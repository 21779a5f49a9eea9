import random

from allmos.registry import register
from allmos.sampling.base import Sampler
from allmos.triton_shared.support import TritonPlugin


@register("sampler", "triton")
class TritonSampler(TritonPlugin, Sampler):
    """Gumbel-max sampling fused into two Triton kernels: the noise is drawn in registers (Philox)
    instead of written to a [batch, vocab] tensor, and each row's vocabulary is spread over many
    programs. Draws differ from `gumbel`'s (another random stream), not their distribution."""

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        from allmos.sampling.kernels.gumbel_max import gumbel_max_sample

        self.kernel = gumbel_max_sample
        self.step_seeds = random.Random(ctx.seed)  # one Philox seed per step, reproducible from `seed`

    def forward(self, logits, temperatures):
        return self.kernel(logits, temperatures, self.step_seeds.getrandbits(31))
