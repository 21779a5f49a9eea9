"""`python run.py mode=generate model=... prompt="..."` (or prompt_file=...): chat with the engine,
greedy by default, printing the answer as its tokens come."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from allmos.cli.job_spec import engine_options, task_overrides
from allmos.errors import ConfigError, RequestError
from allmos.llm import LLM
from allmos.sampling_params import SamplingParams

SHOWN_PROMPT_CHARS = 60


def read_prompt(cfg: DictConfig) -> str:
    if cfg.prompt and cfg.prompt_file:
        raise ConfigError("prompt_file", "give either prompt or prompt_file, not both")
    if cfg.prompt_file == "-":
        return sys.stdin.read()
    if cfg.prompt_file:
        try:
            with open(cfg.prompt_file, encoding="utf-8") as f:
                return f.read()
        except OSError as error:
            raise ConfigError("prompt_file", f"cannot read {cfg.prompt_file!r}: {error.strerror}") from None
    if not cfg.prompt:
        raise ConfigError("prompt", "mode=generate needs one: prompt='\"...\"' or prompt_file=PATH (- for stdin)")
    return str(cfg.prompt)


def generate(cfg: DictConfig) -> dict:
    prompt = read_prompt(cfg)
    options = engine_options(cfg, task_overrides())
    if options["random_weights"] == "always" or options["model"] is None:
        raise ConfigError("model", f"model={cfg.model.name} has no tokenizer (random weights); mode=generate needs one")
    llm = LLM(options.pop("model"), **options)
    if llm.tokenizer is None:
        raise ConfigError("model", f"model={cfg.model.name} has no tokenizer in its folder; mode=generate needs one")
    token_ids = llm.encode(0, apply_chat_template(llm.tokenizer, prompt))
    params = SamplingParams(temperature=0.0, max_tokens=cfg.max_tokens)
    try:
        llm.check([token_ids], [params])
    except RequestError as error:
        reason = str(error).removeprefix("request 0: ")
        raise ConfigError("prompt", f"{shortened(prompt)!r}: {reason}") from None
    if llm.engine.weights == "random":
        print("*** WEIGHTS ARE RANDOM: the text below means nothing ***")
    text = stream(llm, token_ids, params)
    return {"prompt": prompt, "text": text}


def stream(llm: LLM, token_ids: list[int], params: SamplingParams) -> str:
    """Run the one request, printing the text as the engine hands tokens back to the host."""
    seq = llm.engine.add_request(token_ids, params)
    shown = ""
    while llm.engine.has_unfinished():
        llm.engine.step()
        text = llm.decode(seq.output_token_ids)
        if not text.endswith("\ufffd"):  # hold back a character whose bytes are not all there yet
            print(text[len(shown) :], end="", flush=True)
            shown = text
    text = llm.decode(seq.output_token_ids)
    print(text[len(shown) :], flush=True)
    return text


def shortened(prompt: str) -> str:
    return prompt if len(prompt) <= SHOWN_PROMPT_CHARS else f"{prompt[:SHOWN_PROMPT_CHARS]}... ({len(prompt)} chars)"


def apply_chat_template(tokenizer, prompt: str) -> str:
    if not getattr(tokenizer, "chat_template", None):
        return prompt
    messages = [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
