"""The torch Gumbel-max sampler (`sampler=gumbel`); the Triton one is tested in sampler_interpreter_kernels.py
(on CPU, through the interpreter) and test_sampler_gpu.py."""

import pytest
import torch
from sampling_checks import check_distribution, check_greedy, check_temperature_sharpens

from allmos.config import EngineConfig
from allmos.errors import ConfigError
from allmos.registry import BuildContext
from allmos.sampling.gumbel import GumbelSampler
from allmos.validation import validate


@pytest.fixture(params=[False, True], ids=["eager", "compiled"])
def sample(request):
    sampler = GumbelSampler(None, BuildContext(compile=request.param))
    return lambda logits, temps: sampler.forward(logits, temps, torch.tensor([sampler.next_seed()]))


def test_gumbel_draws_the_softmax_distribution(sample):
    check_distribution(sample)


def test_gumbel_greedy_rows_are_argmax(sample):
    check_greedy(sample)


def test_gumbel_temperature_scales_logits(sample):
    check_temperature_sharpens(sample)


def test_gumbel_same_seed_same_draws():
    logits, temps = torch.zeros(4, 1000), torch.ones(4)
    a = GumbelSampler(None, BuildContext(seed=3))
    b = GumbelSampler(None, BuildContext(seed=3))
    seed = torch.tensor([a.next_seed()])
    assert torch.equal(a.forward(logits, temps, seed), b.forward(logits, temps, seed))


def test_triton_sampler_is_refused_on_cpu_naming_the_switch(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    config = EngineConfig.create(None, architecture={"x": 1}, device="cpu", sampler="triton")  # the rest: CPU
    with pytest.raises(ConfigError, match="sampler") as err:
        validate(config)
    assert "sampler=gumbel" in str(err.value)
