import torch

from allmos.registry import register
from allmos.sampling.base import Sampler


def pick_tokens(logits: torch.Tensor, temperatures: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """argmax of p / E with E ~ Exp(1) draws a token with probability p; temperature 0 is argmax.

    Taken in log space, argmax(logits / t - log E), which needs no softmax: one pass over the logits.
    """
    logits = logits.float()
    greedy = logits.argmax(dim=-1)
    safe_t = torch.where(temperatures > 0, temperatures, torch.ones_like(temperatures))
    sampled = (logits / safe_t.unsqueeze(1) - noise.log()).argmax(dim=-1)
    return torch.where(temperatures > 0, sampled, greedy)


@register("sampler", "gumbel")
class GumbelSampler(Sampler):
    """Gumbel-max sampling on the device; compiled (noise drawn outside) with compile=true. The noise
    comes from the sampler's own torch generator (not the step's seed), so it is not captured in graphs."""

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.pick = torch.compile(pick_tokens, dynamic=True) if self.compiled else pick_tokens

    def forward(self, logits: torch.Tensor, temperatures: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
        noise = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
        noise.exponential_(1.0, generator=self.generator)
        return self.pick(logits, temperatures, noise)
