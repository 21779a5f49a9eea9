"""Checkpoints that do not match their config, or cannot be trusted, are refused naming tensor and file."""

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from allmos import LLM
from allmos.errors import ConfigError
from allmos.layers.linear import ColumnParallelLinear, QKVParallelLinear, RowParallelLinear
from allmos.layers.parallel import ParallelInfo
from allmos.models.loader import CheckpointError

Q_PROJ = "model.layers.0.self_attn.q_proj.weight"


@pytest.fixture
def checkpoint(tiny_qwen3, tmp_path):
    return shutil.copytree(tiny_qwen3, tmp_path / "model")


def open_llm(folder):
    return LLM(str(folder), dtype="float32", num_kv_blocks=4, max_model_len=256)


def rewrite_tensors(folder, change):
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def rewrite_config(folder, **fields):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(fields)
    for name in [k for k, v in fields.items() if v is None]:
        config.pop(name)
    with open(path, "w") as f:
        json.dump(config, f)


def test_a_tensor_larger_than_the_config_says_is_refused_not_cut(checkpoint):
    rewrite_tensors(checkpoint, lambda t: t.update({Q_PROJ: torch.randn(65, 64)}))
    with pytest.raises(CheckpointError) as e:
        open_llm(checkpoint)
    message = str(e.value)
    assert f"checkpoint tensor {Q_PROJ}: its shape (65, 64)" in message
    assert "model.safetensors" in message and "expects (64, 64)" in message


def test_a_config_with_fewer_heads_than_the_weights_is_refused(checkpoint):
    rewrite_config(checkpoint, num_attention_heads=2, intermediate_size=64)
    with pytest.raises(CheckpointError, match=r"checkpoint tensor model.layers.0.* its shape .* does not fit"):
        open_llm(checkpoint)


@pytest.mark.parametrize("make", [ColumnParallelLinear, RowParallelLinear])
def test_tensor_parallel_loaders_check_the_whole_tensor_before_slicing(make):
    layer = make(64, 64, False, ParallelInfo(rank=0, size=2))
    too_large = torch.randn(66, 66)
    with pytest.raises(ValueError, match=r"expected shape \(64, 64\), checkpoint has \(66, 66\)"):
        layer.weight.weight_loader(layer.weight, too_large)


def test_packed_qkv_loader_refuses_a_too_large_part_on_a_rank():
    layer = QKVParallelLinear(64, 16, 4, 2, False, ParallelInfo(rank=1, size=2))
    with pytest.raises(ValueError, match=r"\(q projection\): expected shape \(64, 64\), checkpoint has \(80, 64\)"):
        layer.weight.weight_loader(layer.weight, torch.randn(80, 64), "q")


def test_kv_heads_not_dividing_heads_is_named_before_any_shape_error(checkpoint):
    rewrite_config(checkpoint, num_key_value_heads=3)
    with pytest.raises(ConfigError, match="model: .*config.json: num_attention_heads=4 is not divisible by "):
        open_llm(checkpoint)


def test_hidden_size_not_dividing_into_heads_without_head_dim_is_refused(checkpoint):
    rewrite_config(checkpoint, num_attention_heads=3, num_key_value_heads=3, head_dim=None)
    with pytest.raises(ConfigError, match="hidden_size=64 is not divisible by num_attention_heads=3, and no head_dim"):
        open_llm(checkpoint)


def test_implausible_vocab_size_is_refused_before_allocation(checkpoint):
    rewrite_config(checkpoint, vocab_size=1 << 23)
    with pytest.raises(ConfigError, match="vocab_size=8388608 is implausible"):
        open_llm(checkpoint)


def test_a_tensor_in_two_shards_is_refused_naming_both_files(checkpoint):
    save_file({Q_PROJ: torch.randn(64, 64)}, os.path.join(checkpoint, "model-extra.safetensors"))
    with pytest.raises(
        CheckpointError, match=f"{Q_PROJ} is in two files: .*model-extra.safetensors and .*/model.safetensors"
    ):
        open_llm(checkpoint)


def test_a_broken_safetensors_header_names_the_file(checkpoint):
    path = os.path.join(checkpoint, "model.safetensors")
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(b"{not json")
    with pytest.raises(CheckpointError, match=f"{path}: not a readable safetensors file"):
        open_llm(checkpoint)


def test_an_unreadable_bin_file_names_the_file(checkpoint):
    os.remove(os.path.join(checkpoint, "model.safetensors"))
    path = os.path.join(checkpoint, "pytorch_model.bin")
    with open(path, "wb") as f:
        f.write(b"garbage, not a torch file")
    with pytest.raises(CheckpointError, match=f"{path}: torch.load"):
        LLM(str(checkpoint), num_kv_blocks=4, max_model_len=256, load_format="pt")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_tensor_and_file(checkpoint, bad):
    name = "model.layers.1.mlp.down_proj.weight"

    def poison(tensors):
        tensors[name][3, 5] = bad

    rewrite_tensors(checkpoint, poison)
    with pytest.raises(CheckpointError, match=f"checkpoint tensor {name} in .*model.safetensors holds NaN or Inf"):
        open_llm(checkpoint)


def test_a_good_checkpoint_still_loads(checkpoint):
    out = open_llm(checkpoint).generate([[1, 2, 3]], use_tqdm=False)
    assert len(out[0]["token_ids"]) > 0


@pytest.mark.gpu
def test_the_finite_check_adds_no_host_sync_per_tensor_on_cuda():
    from allmos.models.loader import FiniteCheck

    tensors = [torch.randn(64, 64, device="cuda", dtype=torch.bfloat16) for _ in range(8)]
    tensors[5][1, 2] = float("nan")
    torch.cuda.synchronize()
    check = FiniteCheck()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i, t in enumerate(tensors):
            check.add(t, f"t{i}")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with pytest.raises(CheckpointError, match="checkpoint tensor t5 holds NaN or Inf values$"):
        check.raise_if_any()


@pytest.mark.gpu
def test_non_finite_weights_are_refused_on_cuda(checkpoint):
    name = "model.embed_tokens.weight"
    rewrite_tensors(checkpoint, lambda t: t[name].__setitem__((7, 1), float("inf")))
    with pytest.raises(CheckpointError, match=f"checkpoint tensor {name} in .*model.safetensors holds NaN or Inf"):
        LLM(str(checkpoint), device="cuda", dtype="bfloat16", num_kv_blocks=4, max_model_len=256)
