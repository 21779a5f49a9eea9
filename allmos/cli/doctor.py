"""`python run.py mode=doctor`: which backends and switches can run on this machine, and why not."""

from __future__ import annotations

import torch

from allmos.config import CPU_DEFAULTS, PLUGIN_SWITCHES, EngineConfig, PluginChoice
from allmos.errors import ConfigError
from allmos.registry import names
from allmos.validation import validate

ARCH = {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]}


def probe(device: str, **switches) -> str | None:
    """None when the switches validate on this machine, else the refusal message. Each switch is tried
    over the defaults of the device (everything on with CUDA, CPU_DEFAULTS without)."""
    base = CPU_DEFAULTS if device == "cpu" else {}
    options = base | {"device": device, "architecture": ARCH, "random_weights": "always"} | switches
    try:
        config = EngineConfig.create(None, **options)
        validate(config)
    except (ConfigError, ValueError) as error:
        return str(error)
    return None


def switch_rows() -> list[tuple[str, str | None]]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for kind in PLUGIN_SWITCHES:
        for name in names(kind):
            rows.append((f"{kind}={name}", probe(device=device, **{kind: PluginChoice(name)})))
    for switch in ("cuda_graphs", "prefix_caching", "compile", "chunked_prefill", "async_scheduling"):
        rows.append((f"{switch}=true", probe(device=device, **{switch: True})))
    rows.append(("cuda_graphs=forward", probe(device=device, cuda_graphs="forward")))
    return rows


FLAVORS = {
    "flash_attn": "FlashAttention-2 (the flash-attn package, module flash_attn)",
    "flash_attn_interface": "FlashAttention-3 (module flash_attn_interface, e.g. the tokenspeed-fa3 wheel)",
}
FLASH_WAYS = (
    "FA2: pip install flash-attn --no-build-isolation (builds from source, about half an hour); "
    "FA3 on Hopper: pip install tokenspeed-fa3 (a prebuilt wheel providing flash_attn_interface)"
)


def flash_line() -> str:
    """Which FlashAttention attention=flash would use, and both ways to get one (neither is required)."""
    from allmos.attention.flash import installed_flavor

    flavor = installed_flavor()
    found = FLAVORS[flavor] if flavor else "none installed"
    return f"FlashAttention for attention=flash: {found}. To get one: {FLASH_WAYS}"


def doctor() -> dict:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device (CPU only)"
    print(f"allmos doctor: torch {torch.__version__}, {device}")
    print(f"  {flash_line()}")
    rows = switch_rows()
    for switch, problem in rows:
        print(f"  {'ok ' if problem is None else 'no '} {switch:28s} {'' if problem is None else problem}")
    return {switch: problem for switch, problem in rows}
