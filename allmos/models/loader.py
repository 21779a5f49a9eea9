"""Build a registered model from a Hugging Face config and fill it from safetensors or at random."""

from __future__ import annotations

import contextlib
import glob
import os
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


def checkpoint_files(folder: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in {folder}")
    return files


def target_of(model: nn.Module, name: str) -> tuple[str, Any]:
    """Our parameter name and shard id for a checkpoint tensor name."""
    for hf_part, (ours, shard) in getattr(model, "packed_modules", {}).items():
        if f".{hf_part}." in name:
            return name.replace(f".{hf_part}.", f".{ours}."), shard
    return name, None


def load_safetensors(model: nn.Module, folder: str) -> None:
    from safetensors import safe_open

    params = dict(model.named_parameters())
    loaded: set[str] = set()
    for path in checkpoint_files(folder):
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                if name.endswith("rotary_emb.inv_freq"):
                    continue
                if name == "lm_head.weight" and getattr(model, "tied", False):
                    continue
                ours, shard = target_of(model, name)
                if ours not in params:
                    raise KeyError(f"checkpoint tensor {name} has no place in {type(model).__name__}")
                load_tensor(name, params[ours], f.get_tensor(name), shard)
                loaded.add(ours)
    missing = sorted(set(params) - loaded - ({"lm_head.weight"} if getattr(model, "tied", False) else set()))
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
    except ValueError as e:
        raise ValueError(f"checkpoint tensor {name}: {e}") from None


def randomize(model: nn.Module, seed: int, std: float) -> None:
    """Random weights with the architecture's own initializer scale; norms stay at one."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    for name, param in model.named_parameters():
        if name.endswith("norm.weight"):
            param.data.fill_(1.0)
        elif name.endswith("bias"):
            param.data.zero_()
        else:
            param.data.copy_(torch.randn(param.shape, generator=gen, device=device) * std)
