"""CPU tests of the Triton sampler's kernels through the Triton interpreter (run in their own process by
test_triton_kernels_cpu.py; see triton_guards.py). GPU tests: test_sampler_gpu.py."""

import importlib

import pytest
import torch
from sampling_checks import VOCAB, check_distribution, check_greedy, check_temperature_sharpens
from triton_guards import interpreter_loop_bounds, use_triton_interpreter  # noqa: F401 (a fixture)

use_triton_interpreter("test_sampler_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_loop_bounds")]

kernels = importlib.import_module("allmos.sampling.kernels.gumbel_max")
TritonSampler = importlib.import_module("allmos.sampling.triton_sampler").TritonSampler
BuildContext = importlib.import_module("allmos.registry").BuildContext


@pytest.fixture
def sample():
    """A fresh seed each call, as the engine hands the sampler each step's seed."""
    sampler = TritonSampler(None, BuildContext())
    return lambda logits, temps: sampler.forward(logits, temps, torch.tensor([sampler.next_seed()]))


def test_draws_the_softmax_distribution(sample):
    check_distribution(sample)


def test_greedy_rows_are_argmax(sample):
    check_greedy(sample)


def test_temperature_scales_logits(sample):
    check_temperature_sharpens(sample)


def test_a_seed_fixes_the_draw_and_another_seed_changes_it():
    logits, temps = torch.zeros(8, VOCAB), torch.ones(8)
    first = kernels.gumbel_max_sample(logits, temps, seed=11)
    assert torch.equal(first, kernels.gumbel_max_sample(logits, temps, seed=11))
    assert not torch.equal(first, kernels.gumbel_max_sample(logits, temps, seed=12))


@pytest.mark.parametrize("batch,vocab,chunks", [(1, 5000, 5), (3, VOCAB, 2), (600, VOCAB, 1)])
def test_any_chunking_finds_the_row_maximum(batch, vocab, chunks):
    """Greedy over chunkings from several chunks per row (small batch) to one (large batch), bf16 logits."""
    assert kernels.chunks_per_row(batch, vocab, programs_per_sm=4) == chunks
    gen = torch.Generator().manual_seed(batch)
    logits = torch.randn(batch, vocab, generator=gen).to(torch.bfloat16)
    tokens = kernels.gumbel_max_sample(logits, torch.zeros(batch), seed=0, programs_per_sm=4)
    assert torch.equal(tokens, logits.float().argmax(-1))


def test_the_chunking_changes_no_sampled_token():
    """The chunk count is a launch-shape knob (programs_per_sm): the noise of a token depends on its row
    and position alone, so sampled tokens stay the same from one chunk per row to one block per chunk."""
    gen = torch.Generator().manual_seed(3)
    batch, vocab = 200, 3000
    logits = torch.randn(batch, vocab, generator=gen)
    temperatures = torch.rand(batch, generator=gen) + (torch.arange(batch) % 5 == 0) * -10  # some greedy rows
    temperatures = temperatures.clamp(min=0.0)
    assert [kernels.chunks_per_row(batch, vocab, programs_per_sm=p) for p in (1, 2, 4)] == [1, 2, 3]
    tokens = [kernels.gumbel_max_sample(logits, temperatures, seed=5, programs_per_sm=p) for p in (1, 2, 4)]
    assert all(torch.equal(t, tokens[0]) for t in tokens)


def test_chunks_fill_the_gpu_and_never_go_below_a_block():
    assert kernels.chunks_per_row(1, 151936) == 149  # cdiv(151936, 1024): the block bound
    assert kernels.chunks_per_row(256, 151936) == 17  # 32 programs per SM: cdiv(32 * 132, 256)
    assert kernels.chunks_per_row(8192, 151936) == 1


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="temperatures"):
        kernels.gumbel_max_sample(torch.zeros(2, 10), torch.zeros(3), seed=0)
    with pytest.raises(ValueError, match="contiguous"):
        kernels.gumbel_max_sample(torch.zeros(10, 2).t(), torch.zeros(2), seed=0)
    assert kernels.gumbel_max_sample(torch.zeros(0, 10), torch.zeros(0), seed=0).shape == (0,)
