"""Read a model's Hugging Face config (never running remote code) or build one from a dict."""

from __future__ import annotations

import json
import os
from typing import Any

from allmos.config import EngineConfig


def load_hf_config(config: EngineConfig, weights: str) -> Any:
    from transformers import AutoConfig

    if config.model and os.path.isfile(os.path.join(config.model, "config.json")):
        return AutoConfig.from_pretrained(config.model, trust_remote_code=False)
    arch = dict(config.architecture)
    return AutoConfig.for_model(arch.pop("model_type"), **arch)


def eos_token_ids(config: EngineConfig, hf_config: Any) -> set[int]:
    """EOS ids from generation_config.json when present, else from config.json."""
    ids = getattr(hf_config, "eos_token_id", None)
    if config.model:
        path = os.path.join(config.model, "generation_config.json")
        if os.path.isfile(path):
            with open(path) as f:
                ids = json.load(f).get("eos_token_id", ids)
    if ids is None:
        return set()
    return set(ids) if isinstance(ids, list) else {int(ids)}
