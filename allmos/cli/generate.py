"""`python run.py mode=generate model=... prompt="..."`: chat with the engine, greedy by default."""

from __future__ import annotations

from omegaconf import DictConfig

from allmos.cli.job_spec import engine_options
from allmos.llm import LLM
from allmos.sampling_params import SamplingParams


def generate(cfg: DictConfig) -> dict:
    if not cfg.prompt:
        raise ValueError('mode=generate needs a prompt: python run.py mode=generate prompt="..."')
    options = engine_options(cfg)
    llm = LLM(options.pop("model"), **options)
    if llm.tokenizer is None:
        raise ValueError(f"model={cfg.model.name} has no tokenizer in its folder; mode=generate needs one")
    text = apply_chat_template(llm.tokenizer, cfg.prompt)
    params = SamplingParams(temperature=0.0, max_tokens=cfg.max_tokens)
    out = llm.generate([text], params, use_tqdm=False)[0]
    if llm.engine.weights == "random":
        print("*** WEIGHTS ARE RANDOM: the text below means nothing ***")
    print(out["text"])
    return {"prompt": cfg.prompt, "text": out["text"]}


def apply_chat_template(tokenizer, prompt: str) -> str:
    if not getattr(tokenizer, "chat_template", None):
        return prompt
    messages = [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
