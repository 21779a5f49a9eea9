"""The `pdl` option of the Triton plugins (programmatic dependent launch): refused, naming the switch, on
a CUDA GPU older than Hopper; accepted on Hopper and on the CPU interpreter, where kernels run one after
another anyway. That it changes no token is checked on the GPU (test_gpu_engine.py)."""

import pytest
import torch

pytest.importorskip("triton")
from allmos.config import EngineConfig
from allmos.errors import ConfigError
from allmos.validation import check_plugins

PDL_PLUGINS = ["attention", "rope", "linear"]


def check(kind: str, pdl: bool, device: str) -> None:
    # the other Triton plugins (on by default) without pdl, so only `kind`'s option is judged
    plugins = {other: {"name": "triton", "pdl": pdl if other == kind else False} for other in PDL_PLUGINS}
    config = EngineConfig.create(device=device, **plugins)
    check_plugins(config)


@pytest.fixture
def gpu_of_capability(monkeypatch):
    def pretend(major: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, 0))

    return pretend


@pytest.mark.parametrize("kind", PDL_PLUGINS)
def test_pdl_is_refused_on_a_gpu_older_than_hopper(kind, gpu_of_capability):
    gpu_of_capability(8)  # an A100
    with pytest.raises(ConfigError, match=f"{kind}.pdl=false") as refused:
        check(kind, True, "cuda")
    assert refused.value.switch == f"{kind}.pdl"
    check(kind, False, "cuda")


@pytest.mark.parametrize("kind", PDL_PLUGINS)
def test_pdl_is_accepted_on_hopper_and_on_the_interpreter(kind, gpu_of_capability, monkeypatch):
    gpu_of_capability(9)  # an H100
    check(kind, True, "cuda")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    check(kind, True, "cpu")


def test_the_interpreter_runs_pdl_kernels_without_the_grid_dependency_instructions():
    from allmos.triton_shared.support import pdl_launch

    assert pdl_launch("kernel", True, torch.device("cpu")) == {"USE_PDL": False}
    assert pdl_launch("kernel", False, torch.device("cpu")) == {"USE_PDL": False}


@pytest.fixture
def triton_before_3_4(monkeypatch):
    """A Triton without the device side of PDL (gdc_wait, from Triton 3.4): pdl.py imported under it."""
    import importlib
    import sys
    import types

    from allmos.triton_shared import pdl

    monkeypatch.setitem(sys.modules, "triton.language.extra.cuda", types.ModuleType("triton.language.extra.cuda"))
    importlib.reload(pdl)
    yield pdl
    monkeypatch.undo()
    importlib.reload(pdl)


@pytest.mark.parametrize("kind", PDL_PLUGINS)
def test_pdl_is_refused_naming_the_switch_under_a_triton_older_than_3_4(kind, gpu_of_capability, triton_before_3_4):
    """torch 2.6 and 2.7 come with Triton 3.2 and 3.3: the kernels import and run without PDL there."""
    assert triton_before_3_4.TRITON_HAS_PDL is False
    gpu_of_capability(9)
    with pytest.raises(ConfigError, match=rf"Triton 3\.4\+.*{kind}.pdl=false") as refused:
        check(kind, True, "cuda")
    assert refused.value.switch == f"{kind}.pdl"
    check(kind, False, "cuda")


def test_pdl_launches_are_refused_under_a_triton_older_than_3_4(gpu_of_capability, triton_before_3_4):
    from allmos.triton_shared.support import pdl_launch

    gpu_of_capability(9)
    with pytest.raises(ValueError, match=r"Triton 3\.4\+"):
        pdl_launch("kernel", True, torch.device("cuda"))
    assert pdl_launch("kernel", False, torch.device("cuda")) == {"USE_PDL": False}
