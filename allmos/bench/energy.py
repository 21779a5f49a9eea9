"""GPU energy over the timed run, from NVML's total-energy counter, and the clocks at its end.

Read through `pynvml` (the nvidia-ml-py package) where it is importable and the driver answers;
anywhere else (CPU runs, no pynvml, a GPU without the counter) the figures are None and
`source` says why. It never fails a run: a measurement that cannot be taken is reported missing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

KEYS = ("energy_j", "energy_j_per_output_token", "gpu_power_w_mean", "gpu_sm_clock_mhz", "gpu_mem_clock_mhz")


@dataclass
class EnergyMeter:
    nvml: object = None
    handles: list = field(default_factory=list)
    source: str = ""
    start_mj: int | None = None

    def start(self) -> None:
        if self.handles:
            self.start_mj = self.guarded(self.total_mj)

    def total_mj(self) -> int:
        return sum(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles)

    def guarded(self, read):
        """`read()`, or None (with the reason in `source`) when the driver refuses it."""
        try:
            return read()
        except Exception as error:  # noqa: BLE001 - any NVML failure means "not measured", never a failed run
            self.source = f"unavailable: NVML: {type(error).__name__}: {error}"
            self.handles = []
            return None

    def stop(self, output_tokens: int, wall: float) -> dict:
        """The run's figures (None each where not measured)."""
        out = dict.fromkeys(KEYS)
        end_mj = self.guarded(self.total_mj) if self.handles and self.start_mj is not None else None
        if end_mj is not None:
            joules = (end_mj - self.start_mj) / 1e3
            out["energy_j"] = joules
            out["energy_j_per_output_token"] = joules / output_tokens if output_tokens else None
            out["gpu_power_w_mean"] = joules / wall if wall > 0 else None
            out["gpu_sm_clock_mhz"] = self.guarded(lambda: self.clock("NVML_CLOCK_SM"))
            out["gpu_mem_clock_mhz"] = self.guarded(lambda: self.clock("NVML_CLOCK_MEM"))
        return out

    def clock(self, kind: str) -> int:
        return self.nvml.nvmlDeviceGetClockInfo(self.handles[0], getattr(self.nvml, kind))


def energy_meter(device: str, num_gpus: int) -> EnergyMeter:
    """A meter over the run's GPUs (CUDA devices 0..num_gpus-1, found in NVML by their UUIDs)."""
    if device != "cuda":
        return EnergyMeter(source=f"unavailable: the run is on {device}, not a CUDA GPU")
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        return EnergyMeter(source="unavailable: pynvml is not importable (pip install nvidia-ml-py)")
    meter = EnergyMeter(nvml=nvml, source=f"NVML total energy counter, {num_gpus} GPU(s); clocks of GPU 0 at the end")
    meter.handles = meter.guarded(lambda: open_handles(nvml, num_gpus)) or []
    return meter


def open_handles(nvml, num_gpus: int) -> list:
    import torch

    nvml.nvmlInit()
    handles = []
    for index in range(num_gpus):
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        name = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
        handles.append(nvml.nvmlDeviceGetHandleByUUID(name.encode()))
    return handles
