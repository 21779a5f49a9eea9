import torch

from allmos.registry import PluginOptions, register
from allmos.sampling.base import Sampler


@register("sampler", "gumbel")
class GumbelSampler(Sampler):
    """Gumbel-max sampling: argmax of p / E with E ~ Exp(1) draws a token with probability p.

    Rows with temperature 0 take the argmax of the logits (greedy).
    """

    def forward(self, logits: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        greedy = logits.argmax(dim=-1)
        safe_t = torch.where(temperatures > 0, temperatures, torch.ones_like(temperatures))
        probs = torch.softmax(logits / safe_t.unsqueeze(1), dim=-1)
        noise = torch.empty_like(probs).exponential_(1.0, generator=self.generator)
        sampled = (probs / noise).argmax(dim=-1)
        return torch.where(temperatures > 0, sampled, greedy)


GumbelOptions = PluginOptions
