"""`key=value` switches of the bench command lines as LLM keyword arguments.

A plugin switch and its options may come in any order (`attention=triton attention.num_splits=4`) and
become one choice, {"name": "triton", "num_splits": 4}; OmegaConf's dotlist alone would drop the name.
"""

from __future__ import annotations

from typing import Any

import yaml

from allmos.config import PLUGIN_SWITCHES


def parse_switches(items: list[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (base or {}).items()}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"a switch is key=value, got {item!r}")
        value = yaml.safe_load(text) if text else ""
        plugin, dot, option = key.partition(".")
        if dot and plugin in PLUGIN_SWITCHES:
            plugin_choice(options, plugin)[option] = value
        elif key in PLUGIN_SWITCHES:
            plugin_choice(options, key)["name"] = value
        else:
            options[key] = value
    return options


def plugin_choice(options: dict[str, Any], plugin: str) -> dict[str, Any]:
    choice = options.get(plugin)
    if not isinstance(choice, dict):
        choice = {} if choice is None else {"name": choice}
        options[plugin] = choice
    return choice


def architecture_of(model_config: str) -> dict[str, Any]:
    """The `architecture` of a model config file (conf/model/*.yaml): what the tools build random weights for."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(model_config).architecture)
