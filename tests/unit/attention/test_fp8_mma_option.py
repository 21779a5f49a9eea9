"""attention.fp8_mma at the boundary: the Triton backend's option, refused without FP8 pages (naming the
switch), unknown to the other backends, and passed to the decode kernel. What the kernel computes:
fp8_interpreter_kernels.py (CPU) and test_triton_compile_cpu.py (its sm_90 code)."""

import pytest

pytest.importorskip("triton")
from attention_recorders import TINY

from allmos.attention.kernels.decode_heuristics import FP8_MAX_REGISTERS, default_max_registers
from allmos.attention.triton_backend import TritonOptions
from allmos.config import EngineConfig
from allmos.errors import ConfigError
from allmos.validation import validate


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the plugin's check accepts the CPU only under it


def config(attention, **options) -> EngineConfig:
    common = dict(architecture=TINY, random_weights="always", device="cpu")
    return EngineConfig.create(None, attention=attention, **common, **options)


def test_the_option_runs_on_fp8_pages_and_is_off_by_default(interpreter):
    validate(config({"name": "triton", "fp8_mma": True}, kv_cache_dtype="fp8"))
    assert TritonOptions(name="triton").fp8_mma is False  # off until measured on a GPU


def test_pages_in_the_models_dtype_are_refused_naming_the_switch(interpreter):
    with pytest.raises(ConfigError, match="^attention.fp8_mma: .*kv_cache_dtype=fp8") as refused:
        validate(config({"name": "triton", "fp8_mma": True}))
    assert refused.value.switch == "attention.fp8_mma"


@pytest.mark.parametrize("backend", ["sdpa", "flash"])
def test_other_backends_have_no_such_option(backend, interpreter):
    with pytest.raises(ConfigError, match="unknown option.*fp8_mma"):
        validate(config({"name": backend, "fp8_mma": True}, kv_cache_dtype="fp8"))


def test_the_fp8_mma_kernel_keeps_the_compilers_register_choice():
    assert default_max_registers(True) == FP8_MAX_REGISTERS
    assert default_max_registers(True, fp8_mma=True) is None
    assert default_max_registers(False) is None
