"""Whether Triton kernels can run here: on CUDA, or on CPU through Triton's interpreter."""

from __future__ import annotations

import importlib.util
import os

from allmos.errors import ConfigError


def interpreter_on() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def triton_devices() -> tuple[str, ...]:
    return ("cuda", "cpu") if interpreter_on() else ("cuda",)


def require_triton(switch: str) -> None:
    if importlib.util.find_spec("triton") is None:
        raise ConfigError(switch, "needs the triton package: pip install triton (or use the torch/sdpa plugin)")


NON_TRITON_CHOICE = {"attention": "sdpa", "sampler": "gumbel"}  # the rest: torch


def check_triton_device(switch: str, name: str, device: str) -> None:
    require_triton(switch)
    if device not in triton_devices():
        raise ConfigError(
            switch,
            f"{name} runs Triton kernels on CUDA (on CPU only under TRITON_INTERPRET=1, for tests); "
            f"use {switch}={NON_TRITON_CHOICE.get(switch, 'torch')} on {device}",
        )


class TritonPlugin:
    """Mixin first in the bases of a registered plugin that runs Triton kernels (it uses the
    `plugin_kind` and `plugin_name` that `register` sets): where it runs, and the refusal elsewhere."""

    @classmethod
    def runs_on(cls) -> tuple[str, ...]:
        return triton_devices()

    @classmethod
    def check(cls, options, where) -> None:
        check_triton_device(cls.plugin_kind, f"{cls.plugin_kind}={cls.plugin_name}", where.device)


def cuda_capability_at_least(device: str, major: int) -> bool:
    """Whether `device` (a resolved device name) is a CUDA GPU of compute capability major.x or newer."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device)[0] >= major


def triton_has_pdl() -> bool:
    """Whether this Triton has the device side of PDL (gdc_wait, from Triton 3.4: torch 2.8)."""
    from allmos.triton_shared import pdl

    return pdl.TRITON_HAS_PDL


def check_pdl_option(switch: str, enabled: bool, device: str) -> None:
    """`<plugin>.pdl` (programmatic dependent launch) needs Hopper or newer when the kernels run on CUDA,
    and Triton 3.4 or newer."""
    if enabled and device.startswith("cuda") and not triton_has_pdl():
        import triton

        found = f"found {triton.__version__}"
        raise ConfigError(
            switch, f"programmatic dependent launch needs Triton 3.4+ (torch 2.8+), {found}: set {switch}=false"
        )
    if enabled and device.startswith("cuda") and not cuda_capability_at_least(device, 9):
        raise ConfigError(
            switch,
            f"programmatic dependent launch needs a CUDA GPU of compute capability 9.0+ (Hopper); set {switch}=false",
        )


def pdl_launch(name: str, pdl: bool, device) -> dict:
    """Launch options for a kernel asked to use programmatic dependent launch (PDL): the kernel's
    USE_PDL constexpr and Triton's launch_pdl. On the interpreter (CPU tensors) the kernel runs without
    the grid-dependency instructions, which it cannot execute; it needs none there, since the interpreter
    runs each kernel to completion before the next starts, which is what the PDL waits ensure anyway."""
    if not pdl or device.type != "cuda":
        return {"USE_PDL": False}
    if not cuda_capability_at_least(str(device), 9):
        raise ValueError(f"{name}: pdl (programmatic dependent launch) needs a CUDA GPU of compute capability 9.0+")
    if not triton_has_pdl():
        raise ValueError(f"{name}: pdl (programmatic dependent launch) needs Triton 3.4+")
    return {"USE_PDL": True, "launch_pdl": True}
