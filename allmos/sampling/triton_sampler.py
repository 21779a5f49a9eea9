import random

from allmos.registry import register
from allmos.sampling.base import Sampler
from allmos.triton_support import check_triton_device, triton_devices


@register("sampler", "triton")
class TritonSampler(Sampler):
    """Gumbel-max sampling fused into two Triton kernels: the noise is drawn in registers (Philox)
    instead of written to a [batch, vocab] tensor, and each row's vocabulary is spread over many
    programs. Draws differ from `gumbel`'s (another random stream), not their distribution."""

    def __init__(self, options, seed, device, compiled=False):
        super().__init__(options, seed, device, compiled)
        from allmos.sampling.triton_kernels import gumbel_max_sample

        self.kernel = gumbel_max_sample
        self.step_seeds = random.Random(seed)  # one Philox seed per step, reproducible from `seed`

    @classmethod
    def runs_on(cls) -> tuple[str, ...]:
        return triton_devices()

    @classmethod
    def check(cls, config) -> None:
        check_triton_device("sampler", "sampler=triton", config.resolved_device)

    def forward(self, logits, temperatures):
        return self.kernel(logits, temperatures, self.step_seeds.getrandbits(31))
