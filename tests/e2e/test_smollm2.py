"""Real pretrained weights (SmolLM2-135M-Instruct, Llama architecture) through our own loader."""

import os
import subprocess
import sys

import pytest
import torch
from repo_paths import ROOT

from allmos import LLM, SamplingParams

QUESTIONS = [
    "What is the capital of France?",
    "Name a primary colour.",
    "What is 2 plus 3?",
    "Write one word that rhymes with cat.",
]
MAX_TOKENS = 20


def chat(tokenizer, question: str) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer.encode(text)


@pytest.fixture(scope="module")
def llm(smollm2_folder):
    return LLM(
        smollm2_folder, dtype="float32", block_size=16, num_kv_blocks=64, max_model_len=512, max_num_batched_tokens=512
    )


def test_batched_chat_matches_transformers(llm, smollm2_folder):
    from transformers import AutoModelForCausalLM

    prompts = [chat(llm.tokenizer, q) for q in QUESTIONS]
    ours = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=MAX_TOKENS), use_tqdm=False)
    model = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32).eval()
    for prompt, out in zip(prompts, ours):
        ids = torch.tensor([prompt])
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_TOKENS, do_sample=False)
        assert out["token_ids"] == ref[0, len(prompt) :].tolist()


def test_answers_a_factual_question(llm):
    out = llm.generate(
        [chat(llm.tokenizer, QUESTIONS[0])], SamplingParams(temperature=0, max_tokens=MAX_TOKENS), use_tqdm=False
    )[0]
    assert "Paris" in out["text"]


def test_generate_mode_from_the_command_line(smollm2_folder, tmp_path):
    cache = os.path.dirname(smollm2_folder)
    proc = subprocess.run(
        [
            sys.executable,
            "run.py",
            "mode=generate",
            "model=smollm2-135m",
            "device=cpu",
            "prompt=What is the capital of France?",
            "max_tokens=20",
            "num_kv_blocks=16",
            "block_size=64",
            "max_model_len=1024",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, ALLMOS_CACHE=cache),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Paris" in proc.stdout
