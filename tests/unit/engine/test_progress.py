"""Feedback while allmos works: the workload bar counts generated tokens, generate streams, phases log."""

import logging
import os

from omegaconf import OmegaConf
from repo_paths import ROOT

from allmos.cli.generate import stream
from allmos.llm import LLM
from allmos.progress import log_to_folder, phase
from allmos.sampling_params import SamplingParams

TINY = OmegaConf.to_container(OmegaConf.load(os.path.join(ROOT, "conf", "model", "qwen3-tiny.yaml")).architecture)


def test_bar_counts_generated_tokens_with_rate(capsys):
    llm = LLM(None, device="cpu", architecture=TINY, random_weights="always", num_kv_blocks=4)
    params = SamplingParams(temperature=0.0, max_tokens=7, ignore_eos=True)
    llm.generate([[1, 2, 3], [4, 5, 6, 7]], params, use_tqdm=True)
    err = capsys.readouterr().err
    assert "14/14" in err and "tok/s" in err  # by tokens (2 requests x 7), not by finished requests
    assert "0/2" not in err and "2/2" not in err


class FakeEngine:
    """Hands back one token per step, as the engine does on the host."""

    def __init__(self, tokens):
        self.tokens, self.seq = list(tokens), None

    def add_request(self, token_ids, params):
        self.seq = type("Seq", (), {"output_token_ids": []})()
        return self.seq

    def has_unfinished(self):
        return bool(self.tokens)

    def step(self):
        self.seq.output_token_ids.append(self.tokens.pop(0))
        return []


class FakeLLM:
    def __init__(self, tokens):
        self.engine = FakeEngine(tokens)

    def decode(self, ids):
        return "".join(chr(t) for t in ids)


def test_generate_streams_each_token_as_it_comes(capsys):
    printed = []
    llm = FakeLLM([72, 105, 33])

    def step_and_look():
        FakeEngine.step(llm.engine)
        printed.append(capsys.readouterr().out)  # what the user saw before this step ran

    llm.engine.step = step_and_look
    assert stream(llm, [1], SamplingParams(max_tokens=3)) == "Hi!"
    assert printed == ["", "H", "i"] and capsys.readouterr().out == "!\n"


def test_phases_log_to_run_log(tmp_path):
    log_to_folder(str(tmp_path))
    try:
        with phase("warm-up"):
            pass
    finally:
        logger = logging.getLogger("allmos")
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = True
    text = (tmp_path / "run.log").read_text()
    assert "warm-up ..." in text and "warm-up: done in" in text
