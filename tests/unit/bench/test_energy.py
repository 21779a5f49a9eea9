"""GPU energy from NVML where it can be read; None with the reason anywhere else, never a failed run."""

import sys
import types

import pytest
import torch

from allmos.bench.energy import KEYS, energy_meter


def fake_pynvml(energy_mj: list[int], fail: str | None = None) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM = 1, 2
    nvml.opened = []

    def refuse_if(step):
        if fail == step:
            raise RuntimeError(f"NVML_ERROR_NOT_SUPPORTED at {step}")

    def init():
        refuse_if("init")

    def by_uuid(uuid):
        nvml.opened.append(uuid)
        return uuid

    def total_energy(handle):
        refuse_if("energy")
        return energy_mj.pop(0)

    nvml.nvmlInit, nvml.nvmlDeviceGetHandleByUUID = init, by_uuid
    nvml.nvmlDeviceGetTotalEnergyConsumption = total_energy
    nvml.nvmlDeviceGetClockInfo = lambda handle, kind: {1: 1980, 2: 2619}[kind]
    return nvml


@pytest.fixture
def two_gpus(monkeypatch):
    uuids = ["GPU-aaaa", "bbbb"]  # torch gives the UUID with or without NVML's GPU- prefix
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(uuid=uuids[i]))


def test_on_cpu_every_figure_is_none_with_the_reason():
    meter = energy_meter("cpu", 1)
    meter.start()
    assert (
        meter.stop(100, 1.0) == dict.fromkeys(KEYS) and meter.source == "unavailable: the run is on cpu, not a CUDA GPU"
    )


def test_without_pynvml_the_figures_are_none_and_say_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    meter = energy_meter("cuda", 1)
    meter.start()
    assert meter.stop(100, 1.0) == dict.fromkeys(KEYS) and "pynvml is not importable" in meter.source


def test_energy_over_the_run_summed_over_the_gpus(monkeypatch, two_gpus):
    nvml = fake_pynvml([1_000_000, 2_000_000, 1_300_000, 2_500_000])  # two GPUs at the start, two at the end
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    meter = energy_meter("cuda", 2)
    meter.start()
    out = meter.stop(output_tokens=400, wall=2.0)
    assert nvml.opened == [b"GPU-aaaa", b"GPU-bbbb"]
    assert out["energy_j"] == pytest.approx(800.0) and out["energy_j_per_output_token"] == pytest.approx(2.0)
    assert out["gpu_power_w_mean"] == pytest.approx(400.0)
    assert (out["gpu_sm_clock_mhz"], out["gpu_mem_clock_mhz"]) == (1980, 2619)
    assert meter.source.startswith("NVML total energy counter, 2 GPU(s)")


@pytest.mark.parametrize("step", ["init", "energy"])
def test_a_driver_that_refuses_leaves_the_figures_none_and_the_run_going(monkeypatch, two_gpus, step):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([1, 2, 3, 4], fail=step))
    meter = energy_meter("cuda", 1)
    meter.start()
    assert meter.stop(100, 1.0) == dict.fromkeys(KEYS)
    assert meter.source == f"unavailable: NVML: RuntimeError: NVML_ERROR_NOT_SUPPORTED at {step}"


@pytest.mark.gpu
def test_on_a_gpu_energy_is_measured_where_pynvml_is_installed():
    pytest.importorskip("pynvml")
    meter = energy_meter("cuda", 1)
    meter.start()
    x = torch.randn(4096, 4096, device="cuda")
    for _ in range(200):
        x = x @ x.T / 4096
    torch.cuda.synchronize()
    out = meter.stop(output_tokens=1, wall=1.0)
    assert meter.source.startswith("NVML"), meter.source
    assert out["energy_j"] is not None and out["energy_j"] >= 0 and out["gpu_sm_clock_mhz"] > 0
