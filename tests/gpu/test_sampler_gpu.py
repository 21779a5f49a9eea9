"""The Triton sampler's compiled kernels on a CUDA device, at the real vocabulary size."""

import pytest
import torch
from sampling_checks import check_distribution, check_greedy, check_temperature_sharpens
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu
require_compiled_triton()

from allmos.registry import BuildContext  # noqa: E402
from allmos.sampling.kernels.gumbel_max import gumbel_max_sample  # noqa: E402
from allmos.sampling.triton_sampler import TritonSampler  # noqa: E402

QWEN3_VOCAB = 151936


@pytest.fixture
def sample():
    sampler = TritonSampler(None, BuildContext(device=torch.device("cuda")))

    def sample(logits, temps):
        seed = torch.tensor([sampler.next_seed()], device="cuda")
        return sampler.forward(logits.cuda(), temps.cuda(), seed).cpu()

    return sample


def test_distribution_greedy_and_temperature(sample):
    check_distribution(sample)
    check_greedy(sample)
    check_temperature_sharpens(sample)


@pytest.mark.parametrize("batch", [1, 7, 256])
def test_greedy_matches_argmax_at_the_real_vocabulary(batch):
    gen = torch.Generator(device="cuda").manual_seed(batch)
    logits = torch.randn(batch, QWEN3_VOCAB, generator=gen, device="cuda").to(torch.bfloat16)
    tokens = gumbel_max_sample(logits, torch.zeros(batch, device="cuda"), seed=1)
    assert torch.equal(tokens, logits.float().argmax(-1))


def test_uniform_logits_spread_over_the_vocabulary():
    """Flat logits at batch 1 (149 chunks): the draws cover the whole vocabulary, not one chunk."""
    logits, temps = torch.zeros(1, QWEN3_VOCAB, device="cuda"), torch.ones(1, device="cuda")
    draws = torch.cat([gumbel_max_sample(logits, temps, seed=s) for s in range(400)])
    assert draws.unique().numel() > 390
    assert draws.float().mean().item() == pytest.approx(QWEN3_VOCAB / 2, rel=0.1)
