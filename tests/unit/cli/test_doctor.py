"""`mode=doctor`: what runs here over the device's defaults, and which FlashAttention is installed."""

import pytest

from allmos.cli import doctor


@pytest.mark.parametrize(
    "flavor,names",
    [
        (None, "none installed"),
        ("flash_attn", "FlashAttention-2 (the flash-attn package"),
        ("flash_attn_interface", "FlashAttention-3 (module flash_attn_interface"),
    ],
)
def test_flash_line_names_the_flavour_and_both_ways(monkeypatch, flavor, names):
    monkeypatch.setattr("allmos.attention.flash.installed_flavor", lambda: flavor)
    line = doctor.flash_line()
    assert names in line
    assert "pip install flash-attn --no-build-isolation" in line and "pip install tokenspeed-fa3" in line


def test_switch_rows_on_cpu_try_each_switch_over_the_cpu_defaults(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    rows = dict(doctor.switch_rows())
    assert rows["attention=sdpa"] is None and rows["prefix_caching=true"] is None
    assert rows["attention=triton"].startswith("attention: triton runs on cuda only")
    assert rows["cuda_graphs=true"].startswith("cuda_graphs:")
