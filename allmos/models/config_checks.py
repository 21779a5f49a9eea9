"""Refuse a model config whose sizes cannot describe a working decoder, before any memory is allocated.

Checked once the Hugging Face config is read: every size a positive integer, query heads a multiple
of key-value heads, head_dim x heads = hidden_size where the config leaves head_dim to be implied,
an even head_dim (rotary embeddings rotate pairs) and a plausible vocabulary size.
"""

from __future__ import annotations

import json
import os
from typing import Any

from allmos.errors import ConfigError

# The largest vocabularies in use are about 262k tokens; far beyond that, a config is wrong (and its
# embedding alone would exhaust memory before any clearer error).
MAX_VOCAB_SIZE = 1 << 22

SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")


def declared_fields(model_folder: str | None, architecture: dict | None) -> tuple[dict, str]:
    """The fields as written (config.json or the architecture dict) and where they come from: the
    loaded config fills defaults in, which would hide a head_dim that was never given."""
    path = os.path.join(model_folder, "config.json") if model_folder else None
    if path and os.path.isfile(path):
        with open(path) as f:
            return json.load(f), path
    return dict(architecture or {}), "model.architecture"


def check_model_config(hf_config: Any, declared: dict, source: str) -> None:
    """Raises ConfigError("model", ...) naming the field, its value and `source`."""

    def refuse(reason: str) -> None:
        raise ConfigError("model", f"{source}: {reason}")

    for field in SIZES:
        check_positive_int(field, getattr(hf_config, field, None), refuse)
    heads = hf_config.num_attention_heads
    kv_heads = getattr(hf_config, "num_key_value_heads", None) or heads
    check_positive_int("num_key_value_heads", kv_heads, refuse)
    if heads % kv_heads:
        refuse(
            f"num_attention_heads={heads} is not divisible by num_key_value_heads={kv_heads} "
            "(heads not divisible: each key-value head serves a whole group of query heads)"
        )
    check_head_dim(hf_config, declared, refuse)
    if hf_config.vocab_size > MAX_VOCAB_SIZE:
        refuse(f"vocab_size={hf_config.vocab_size} is implausible (largest in use ~262k, limit {MAX_VOCAB_SIZE})")


def check_head_dim(hf_config: Any, declared: dict, refuse) -> None:
    hidden, heads = hf_config.hidden_size, hf_config.num_attention_heads
    if declared.get("head_dim") is None:
        if hidden % heads:
            refuse(
                f"hidden_size={hidden} is not divisible by num_attention_heads={heads}, and no head_dim is "
                "given: the architecture implies head_dim = hidden_size / num_attention_heads"
            )
        head_dim = hidden // heads
    else:
        head_dim = declared["head_dim"]
        check_positive_int("head_dim", head_dim, refuse)
    if head_dim % 2:
        refuse(f"head_dim={head_dim} is odd; rotary embeddings need an even head_dim")


def check_positive_int(field: str, value: Any, refuse) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        refuse(f"{field} must be a positive integer, got {value!r}")
