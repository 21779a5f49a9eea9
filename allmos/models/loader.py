"""Build a registered model from a Hugging Face config and fill it from safetensors or at random."""

from __future__ import annotations

import contextlib
import glob
import os
import pickle
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


class CheckpointError(ValueError):
    """A checkpoint that does not match its config or cannot be read; names the tensor and the file."""


def checkpoint_tensors(folder: str, load_format: str):
    """(file, name, tensor) of every checkpoint tensor; .bin only through torch.load(weights_only=True).
    A tensor in two files is refused, naming both."""
    seen: dict[str, str] = {}
    for path in checkpoint_files(folder, load_format):
        reader = read_pt if load_format == "pt" else read_safetensors
        for name, tensor in reader(path):
            if name in seen:
                raise CheckpointError(f"checkpoint tensor {name} is in two files: {seen[name]} and {path}")
            seen[name] = path
            yield path, name, tensor


def read_pt(path: str):
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: torch.load(weights_only=True) cannot read it: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a dict of tensors")
    yield from state.items()


def read_safetensors(path: str):
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a dict
                yield name, f.get_tensor(name)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file: {e}") from None


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
    """Fill every parameter from the checkpoint; a missing, unexpected, misshapen, duplicated or
    non-finite tensor is an error naming it and its file."""
    params = dict(model.named_parameters())
    expected = expected_parts(model)
    loaded: set[tuple[str, Any]] = set()
    finite = FiniteCheck()
    for path, name, tensor in checkpoint_tensors(folder, load_format):
        if name.endswith("rotary_emb.inv_freq") or (name == "lm_head.weight" and getattr(model, "tied", False)):
            continue
        ours, shard = target_of(model, name)
        if ours not in params:
            raise KeyError(f"unexpected checkpoint tensor {name} in {path}: it has no place in {type(model).__name__}")
        check_checkpoint_shape(name, path, params[ours], tensor, shard)
        finite.add(load_tensor(name, params[ours], tensor, shard), f"{name} in {path}")
        loaded.add((ours, shard))
    missing = sorted(expected[k] for k in set(expected) - loaded)
    if missing:
        raise KeyError(f"checkpoint in {folder} lacks tensor(s): {', '.join(missing[:8])}")
    finite.raise_if_any()


def checkpoint_shape_of(param: nn.Parameter, shard: Any) -> tuple[int, ...]:
    """The whole checkpoint tensor's shape the config implies, before any tensor-parallel slicing."""
    return param.checkpoint_shape(param, shard) if hasattr(param, "checkpoint_shape") else tuple(param.shape)


def check_checkpoint_shape(name: str, path: str, param: nn.Parameter, tensor: torch.Tensor, shard: Any) -> None:
    """Before any narrowing: a tensor too large would otherwise be cut to size silently."""
    want = checkpoint_shape_of(param, shard)
    if tuple(tensor.shape) != want:
        raise CheckpointError(
            f"checkpoint tensor {name}: its shape {tuple(tensor.shape)} in {path} does not fit the model's "
            f"config, which expects {want}"
        )


class FiniteCheck:
    """Whether every loaded tensor is finite, reduced on the tensors' device: one host sync at the end."""

    def __init__(self):
        self.flags: list[torch.Tensor] = []
        self.names: list[str] = []

    def add(self, filled: torch.Tensor, name: str) -> None:
        if filled.numel() == 0:
            return
        # min and max carry any NaN or Inf; measured ~2.7x faster than isfinite().all() on CPU, and no
        # temporary tensor of the weight's size on the device.
        self.flags.append(torch.stack(torch.aminmax(filled)).isfinite().all())
        self.names.append(name)

    def raise_if_any(self) -> None:
        if not self.flags:
            return
        ok = torch.stack(self.flags).cpu().tolist()
        bad = [name for name, good in zip(self.names, ok) if not good]
        if bad:
            more = f" (and {len(bad) - 1} more: {', '.join(bad[1:4])})" if len(bad) > 1 else ""
            raise CheckpointError(f"checkpoint tensor {bad[0]} holds NaN or Inf values{more}")


def load_tensor(name: str, param: nn.Parameter, tensor: torch.Tensor, shard: Any) -> torch.Tensor:
    """Copy this rank's part of `tensor` into `param`; returns the part of `param` it filled."""
    loader = getattr(param, "weight_loader", None)
    try:
        if loader is None:
            check_shape("", param.shape, tensor.shape)
            param.data.copy_(tensor)
            return param.data
        return loader(param, tensor, shard)
    except (ValueError, RuntimeError) as e:  # RuntimeError: a slice of the wrong shape
        raise CheckpointError(
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
        shape = checkpoint_shape_of(param, shard)
        if ours.endswith("norm.weight"):
            full = torch.ones(shape, device=device)
        elif ours.endswith("bias"):
            full = torch.zeros(shape, device=device)
        else:
            gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            full = torch.randn(shape, generator=gen, device=device) * std
        load_tensor(name, param, full.to(param.dtype), shard)
