"""Build a registered model from a Hugging Face config and fill it from safetensors or at random."""

from __future__ import annotations

import contextlib
import glob
import os
import zlib
from typing import Any

import torch
from torch import nn

from allmos.layers.linear import check_shape
from allmos.models.context import ModelContext
from allmos.registry import lookup


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def architecture_of(hf_config: Any) -> str:
    archs = getattr(hf_config, "architectures", None) or []
    if len(archs) != 1:
        raise ValueError(f"config.json must name exactly one architecture, found {archs}")
    return archs[0]


def build_model(hf_config: Any, ctx: ModelContext, device: torch.device, dtype: torch.dtype) -> nn.Module:
    cls = lookup("model", architecture_of(hf_config)).cls
    with torch.device(device), default_dtype(dtype):
        return cls(hf_config, ctx)


LOAD_FORMATS = ("safetensors", "pt")


def checkpoint_files(folder: str, load_format: str) -> list[str]:
    pattern = "*.safetensors" if load_format == "safetensors" else "*.bin"
    files = sorted(glob.glob(os.path.join(folder, pattern)))
    if files:
        return files
    if load_format == "safetensors" and glob.glob(os.path.join(folder, "*.bin")):
        raise FileNotFoundError(
            f"{folder} has only .bin checkpoints; pass load_format=pt to read them with "
            "torch.load(weights_only=True), or convert them to safetensors"
        )
    raise FileNotFoundError(f"no {pattern} files in {folder}")


def checkpoint_tensors(folder: str, load_format: str):
    """(name, tensor) pairs of every checkpoint file; .bin only through torch.load(weights_only=True)."""
    for path in checkpoint_files(folder, load_format):
        if load_format == "pt":
            yield from torch.load(path, map_location="cpu", weights_only=True).items()
            continue
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a dict
                yield name, f.get_tensor(name)


def target_of(model: nn.Module, name: str) -> tuple[str, Any]:
    """Our parameter name and shard id for a checkpoint tensor name."""
    for hf_part, (ours, shard) in getattr(model, "packed_modules", {}).items():
        if f".{hf_part}." in name:
            return name.replace(f".{hf_part}.", f".{ours}."), shard
    return name, None


def expected_parts(model: nn.Module) -> dict[tuple[str, Any], str]:
    """(our parameter, shard) -> the checkpoint name that must fill it."""
    packed = getattr(model, "packed_modules", {})
    parts = {}
    for name, _ in model.named_parameters():
        if name == "lm_head.weight" and getattr(model, "tied", False):
            continue
        shards = [(hf, shard) for hf, (ours, shard) in packed.items() if f".{ours}." in name]
        for hf, shard in shards or [(None, None)]:
            parts[(name, shard)] = name.replace(f".{packed[hf][0]}.", f".{hf}.") if hf else name
    return parts


def load_checkpoint(model: nn.Module, folder: str, load_format: str = "safetensors") -> None:
    """Fill every parameter from the checkpoint; a missing, unexpected or misshapen tensor is an error naming it."""
    params = dict(model.named_parameters())
    expected = expected_parts(model)
    loaded: set[tuple[str, Any]] = set()
    for name, tensor in checkpoint_tensors(folder, load_format):
        if name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and getattr(model, "tied", False)):
            continue
        ours, shard = target_of(model, name)
        if ours not in params:
            raise KeyError(f"unexpected checkpoint tensor {name}: it has no place in {type(model).__name__}")
        load_tensor(name, params[ours], tensor, shard)
        loaded.add((ours, shard))
    missing = sorted(expected[k] for k in set(expected) - loaded)
    if missing:
        raise KeyError(f"checkpoint in {folder} lacks tensor(s): {', '.join(missing[:8])}")


def load_tensor(name: str, param: nn.Parameter, tensor: torch.Tensor, shard: Any) -> None:
    loader = getattr(param, "weight_loader", None)
    try:
        if loader is None:
            check_shape("", param.shape, tensor.shape)
            param.data.copy_(tensor)
        else:
            loader(param, tensor, shard)
    except (ValueError, RuntimeError) as e:  # RuntimeError: a slice of the wrong shape
        raise ValueError(
            f"checkpoint tensor {name}: its shape {tuple(tensor.shape)} does not fit the parameter "
            f"({tuple(param.shape)} on this rank): {e}"
        ) from None


def randomize(model: nn.Module, seed: int, std: float) -> None:
    """Random weights at the architecture's initializer scale (norms one, biases zero).

    Each checkpoint tensor is drawn whole, from a generator seeded by its name, and loaded like a
    checkpoint: every tensor-parallel rank then holds its slice of one and the same model.
    """
    params = dict(model.named_parameters())
    device = next(model.parameters()).device
    for (ours, shard), name in expected_parts(model).items():
        param = params[ours]
        shape = param.checkpoint_shape(param, shard) if hasattr(param, "checkpoint_shape") else tuple(param.shape)
        if ours.endswith("norm.weight"):
            full = torch.ones(shape, device=device)
        elif ours.endswith("bias"):
            full = torch.zeros(shape, device=device)
        else:
            gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            full = torch.randn(shape, generator=gen, device=device) * std
        load_tensor(name, param, full.to(param.dtype), shard)
