"""Model folders made on first need from a package that ships the weights (never from a hub)."""

from __future__ import annotations


def prepare_model(name: str) -> str:
    """The local folder for a `prepare:` name in a model config; made once, then reused."""
    if name == "smollm2":
        from allmos.models.gguf_convert import ensure_smollm2_folder

        return str(ensure_smollm2_folder())
    raise ValueError(f"model prepare={name!r} is unknown; known: smollm2")
