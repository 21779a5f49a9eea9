"""Clear errors, before any work starts, for bad configs, bad requests and bad checkpoints."""

import json
import os
import subprocess
import sys

import pytest
import torch
from models import save_tiny_model
from repo_paths import ROOT
from safetensors.torch import load_file, save_file

from allmos import LLM, SamplingParams
from allmos.attention.flash import FlashBackend
from allmos.attention.triton_backend import TritonBackend
from allmos.config import EngineConfig
from allmos.errors import ConfigError, RequestError
from allmos.kv_store.triton_store import TritonKVStore
from allmos.registry import CheckContext, make_options
from allmos.validation import validate

REFUSED = [
    (["attention=flash"], "attention", "on cpu use attention=sdpa"),
    (["cuda_graphs=true"], "cuda_graphs", "use cuda_graphs=false"),
    (["gpu_memory_utilization=1.5"], "gpu_memory_utilization", "(0, 1]"),
    (["gpu_memory_utilization=0"], "gpu_memory_utilization", "(0, 1]"),
    (["max_model_len=100000", "max_num_batched_tokens=100000"], "max_model_len", "max_position_embeddings"),
    (["tensor_parallel_size=3"], "tensor_parallel_size", "does not divide"),
    (["block_size=24"], "block_size", "power of two"),
]


@pytest.mark.parametrize("overrides,switch,hint", REFUSED)
def test_refused_configs_exit_non_zero_naming_the_switch(tmp_path, overrides, switch, hint):
    args = [
        sys.executable,
        "run.py",
        "model=qwen3-tiny",
        "workload=smoke",
        "device=cpu",
        "probe=false",
        *overrides,
        f"hydra.run.dir={tmp_path}",
    ]
    proc = subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, ALLMOS_CACHE=str(tmp_path / "cache")),
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert f"{switch}:" in out and hint in out
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "failed" and switch in record["error"]


def test_folder_without_config_json_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="model: .* has no config.json"):
        validate(EngineConfig(model=str(tmp_path), random_weights="never"))


def where(block_size: int = 256) -> CheckContext:
    """What a plugin's check sees: the CPU, these pages, attention=flash."""
    return CheckContext("cpu", block_size, FlashBackend)


def test_flash_with_pages_not_a_multiple_of_256_is_refused():
    with pytest.raises(ConfigError, match="block_size: attention=flash needs pages of a multiple of 256"):
        FlashBackend.check(make_options("attention", "flash"), where(block_size=128))


def test_missing_optional_packages_are_named_with_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("flash_attn", "flash_attn_interface", "triton") else real(name, *a),
    )
    with pytest.raises(ConfigError, match="attention: flash needs the flash-attn package.*pip install flash-attn"):
        FlashBackend.check(make_options("attention", "flash"), where())
    with pytest.raises(ConfigError, match="kv_store: needs the triton package: pip install triton"):
        TritonKVStore.check(make_options("kv_store", "triton"), where())
    with pytest.raises(ConfigError, match="attention: needs the triton package: pip install triton"):
        TritonBackend.check(make_options("attention", "triton"), where())


def test_tensor_parallel_beyond_visible_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="tensor_parallel_size: 2 ranks need as many GPUs, 1 visible"):
        validate(
            EngineConfig(
                architecture={"model_type": "qwen3"}, random_weights="always", device="cuda", tensor_parallel_size=2
            )
        )


@pytest.fixture(scope="module")
def llm(tiny_qwen3):
    return LLM(tiny_qwen3, dtype="float32", block_size=16, num_kv_blocks=8, max_model_len=256)


BAD_REQUESTS = [
    ([], SamplingParams(), "the prompt is empty"),
    (list(range(300)), SamplingParams(), "max_model_len=256"),
    ([1, 2, 3], SamplingParams(max_tokens=0), "max_tokens must be at least 1"),
    ([1, 2, 3], SamplingParams(temperature=-0.5), "temperature must be >= 0"),
    ([1, 2, 512], SamplingParams(), "token id 512 is outside the vocabulary"),
    ([1, 2, -1], SamplingParams(), "token id -1 is outside the vocabulary"),
    ([1, 2, 3], SamplingParams(max_tokens=200), "the whole KV cache holds 128"),
]


@pytest.mark.parametrize("prompt,params,message", BAD_REQUESTS)
def test_bad_requests_are_refused_before_any_work_naming_the_index(llm, prompt, params, message):
    steps_before = len(llm.engine.stats.trace)
    with pytest.raises(RequestError, match=f"request 1: .*{message}".replace("(", r"\(").replace("[", r"\[")):
        llm.generate([[5, 6, 7], prompt], [SamplingParams(max_tokens=2), params], use_tqdm=False)
    assert len(llm.engine.stats.trace) == steps_before
    assert not llm.engine.has_unfinished()


@pytest.fixture
def checkpoint(tmp_path):
    return save_tiny_model(tmp_path / "model", "qwen3")


def rewrite(folder, change):
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


def test_missing_tensor_is_named(checkpoint):
    rewrite(checkpoint, lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"))
    with pytest.raises(KeyError, match="model.layers.1.self_attn.k_proj.weight"):
        LLM(checkpoint, num_kv_blocks=4, max_model_len=256)


def test_unexpected_tensor_is_named(checkpoint):
    rewrite(checkpoint, lambda t: t.update({"model.layers.0.mystery.weight": torch.zeros(2)}))
    with pytest.raises(KeyError, match="unexpected checkpoint tensor model.layers.0.mystery.weight"):
        LLM(checkpoint, num_kv_blocks=4, max_model_len=256)


def test_wrongly_shaped_tensor_is_named(checkpoint):
    rewrite(checkpoint, lambda t: t.update({"model.layers.0.mlp.up_proj.weight": torch.zeros(7, 64)}))
    with pytest.raises(ValueError, match="checkpoint tensor model.layers.0.mlp.up_proj.weight: .*shape"):
        LLM(checkpoint, num_kv_blocks=4, max_model_len=256)


def test_bin_checkpoints_only_when_asked(tmp_path):
    from transformers import AutoModelForCausalLM

    folder = save_tiny_model(tmp_path / "st", "qwen3")
    model = AutoModelForCausalLM.from_pretrained(folder)
    bin_folder = str(tmp_path / "bin")
    model.save_pretrained(bin_folder, safe_serialization=False)
    if not any(f.endswith(".bin") for f in os.listdir(bin_folder)):
        torch.save(model.state_dict(), os.path.join(bin_folder, "pytorch_model.bin"))
        for f in os.listdir(bin_folder):
            if f.endswith(".safetensors"):
                os.remove(os.path.join(bin_folder, f))
    with pytest.raises(FileNotFoundError, match="load_format=pt"):
        LLM(bin_folder, num_kv_blocks=4, max_model_len=256)
    params = SamplingParams(temperature=0, max_tokens=5)
    ours = LLM(bin_folder, num_kv_blocks=8, max_model_len=256, load_format="pt").generate(
        [[4, 5, 6]], params, use_tqdm=False
    )
    ref = LLM(folder, num_kv_blocks=8, max_model_len=256).generate([[4, 5, 6]], params, use_tqdm=False)
    assert ours[0]["token_ids"] == ref[0]["token_ids"]
