"""The kv_cache_dtype switch at the boundary: values, combinations and devices it refuses (before any
weights load, naming the switch), and how it marks a configuration as approximate."""

import pytest
import torch

from allmos.config import EngineConfig, approximate_switches
from allmos.errors import ConfigError
from allmos.validation import validate

TINY = dict(
    architectures=["Qwen3ForCausalLM"], model_type="qwen3", vocab_size=64, hidden_size=32, intermediate_size=64,
    num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=256,
)  # fmt: skip


def config(**options) -> EngineConfig:
    return EngineConfig.create(None, architecture=TINY, random_weights="always", **options)


def test_unknown_values_are_refused_listing_the_valid_ones():
    for value in ("int4", "fp16", "e4m3"):
        with pytest.raises(ConfigError, match=f"^kv_cache_dtype: must be one of auto, fp8, got '{value}'"):
            validate(config(device="cpu", kv_cache_dtype=value))


def test_fp8_runs_on_cpu_with_the_torch_path_and_is_approximate():
    validate(config(device="cpu", kv_cache_dtype="fp8"))
    assert config(device="cpu", kv_cache_dtype="fp8").kv_cache_torch_dtype == torch.float8_e4m3fn
    assert config(device="cpu").kv_cache_torch_dtype == torch.float32  # auto: the model's dtype
    assert approximate_switches(config(device="cpu", kv_cache_dtype="fp8")) == ["kv_cache_dtype=fp8"]
    assert approximate_switches(config(device="cpu")) == []
    assert approximate_switches({"kv_cache_dtype": "fp8", "attention": "sdpa"}) == ["kv_cache_dtype=fp8"]
    assert approximate_switches({"attention": "sdpa"}) == []


def test_the_fixed_scale_option_needs_fp8_and_a_positive_finite_value():
    validate(config(device="cpu", kv_cache_dtype="fp8", kv_store={"name": "torch", "fp8_scale": 1.0}))
    with pytest.raises(ConfigError, match="^kv_store.fp8_scale: applies only with kv_cache_dtype=fp8"):
        validate(config(device="cpu", kv_store={"name": "torch", "fp8_scale": 1.0}))
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="^kv_store.fp8_scale: must be a finite number > 0"):
            validate(config(device="cpu", kv_cache_dtype="fp8", kv_store={"name": "torch", "fp8_scale": bad}))


def pretend_cuda(monkeypatch, capability):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)


@pytest.mark.parametrize("capability", [(7, 5), (8, 0), (8, 6)])
def test_fp8_on_a_gpu_without_fp8_conversion_is_refused(monkeypatch, capability):
    pretend_cuda(monkeypatch, capability)
    with pytest.raises(ConfigError, match=r"^kv_cache_dtype: fp8 needs a CUDA GPU of compute capability 8\.9\+"):
        validate(config(device="cuda", kv_cache_dtype="fp8", attention="sdpa", kv_store="torch", rope="torch",
                        linear="torch", sampler="gumbel", cuda_graphs=False))  # fmt: skip


def test_flash_is_refused_with_fp8_naming_both_switches(monkeypatch):
    pretend_cuda(monkeypatch, (9, 0))
    with pytest.raises(ConfigError, match="^attention: flash cannot read the pages of kv_cache_dtype=fp8") as error:
        validate(config(device="cuda", kv_cache_dtype="fp8", attention="flash", kv_store="torch", rope="torch",
                        linear="torch", sampler="gumbel", cuda_graphs=False))  # fmt: skip
    assert "attention=triton" in str(error.value) and "kv_cache_dtype=auto" in str(error.value)


def test_a_plugin_that_cannot_handle_fp8_pages_is_refused(monkeypatch):
    from allmos.attention.sdpa import SdpaBackend

    monkeypatch.setattr(SdpaBackend, "fp8_kv_cache", False)
    with pytest.raises(ConfigError, match="^attention: sdpa cannot read the FP8 pages of kv_cache_dtype=fp8; use"):
        validate(config(device="cpu", kv_cache_dtype="fp8"))
