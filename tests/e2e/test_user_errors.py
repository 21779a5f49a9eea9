"""Every user error of `python run.py` is one line naming the key, exit status 1, no traceback."""

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from models import save_tiny_model
from omegaconf import open_dict
from repo_paths import ROOT

from allmos.cli.app import run_job
from allmos.cli.schema import register_schemas


@pytest.fixture(scope="module", autouse=True)
def schemas():
    register_schemas()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLMOS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ALLMOS_MODELS", str(tmp_path / "models"))


def run_in_process(tmp_path, *overrides: str) -> str:
    """run.py's job function on the composed config (as Hydra calls it); returns the one error line."""
    overrides = ("+machine=cpu", *overrides, f"hydra.run.dir={tmp_path}/run")
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        HydraConfig.instance().set_config(cfg)
        del cfg["hydra"]  # as Hydra hands it to the task function
    with pytest.raises(SystemExit) as exit_info:
        run_job(cfg)
    assert exit_info.value.code == 1
    return exit_info


@pytest.mark.parametrize(
    "args,starts",
    [
        (["mode=foo"], "allmos: mode: 'foo' is unknown"),
        (["mode=generate"], "allmos: prompt: mode=generate needs one"),
        (["mode=generate", "prompt=hi"], "allmos: model: model=qwen3-0.6b has no tokenizer"),
        (["workload.num_requests=-1"], "allmos: workload.num_requests: must be an integer of at least 1"),
        (["workload.num_requests=0"], "allmos: workload.num_requests: must be an integer of at least 1"),
        (["workload.input_len_max=2"], "allmos: workload.input_len_max: 2 is below input_len_min=16"),
        (["attention=sdpa", "+attention.num_splits=4"], "allmos: attention.num_splits: attention=sdpa has no option"),
        (["+trust_remote_code=true"], "allmos: trust_remote_code: unsupported"),
        (["+model.trust_remote_code=true"], "allmos: model.trust_remote_code: unsupported"),
        (["+no_such_key=1"], "allmos: no_such_key: unknown key"),
        (["model.path=/tmp/does-not-exist"], "allmos: model.path: '/tmp/does-not-exist' does not exist"),
        (["model=smollm2-135m", "model.path=/tmp/does-not-exist"], "allmos: model.path: '/tmp/does-not-exist'"),
        (["workload=serving", "workload.request_rate=0"], "allmos: workload.request_rate: must be a number"),
        (["workload=serving", "workload.request_rate=-2"], "allmos: workload.request_rate: must be a number"),
        (["workload=serving", "workload.arrival=gamma", "workload.burstiness=0"], "allmos: workload.burstiness: must"),
        (["workload=serving", "workload.priority=1.5"], "allmos: workload.priority: must be null, an integer"),
        (["workload=trace", "workload.trace=/tmp/no-trace.jsonl"], "allmos: workload.trace: '/tmp/no-trace.jsonl'"),
        (["slo.ttft_ms=0"], "allmos: slo.ttft_ms: must be null (not judged) or a number of milliseconds above 0"),
        (["slo.e2e_ms=-5"], "allmos: slo.e2e_ms: must be null"),
        (["+slo.itl_ms=5"], "allmos: slo.itl_ms: slo has no option"),
    ],
)
def test_user_error_is_one_line_naming_the_key(tmp_path, capsys, args, starts):
    run_in_process(tmp_path, *args)
    err = capsys.readouterr().err.strip()
    assert err.startswith(starts) and "\n" not in err, err
    assert not (tmp_path / "run" / "result.json").exists()  # refused before any job started


@pytest.mark.parametrize(
    "args,reason",
    [
        (["kv_cache_dtype=int4"], "ConfigError: kv_cache_dtype: must be one of auto, fp8, got 'int4'"),
        (["kv_store.fp8_scale=1.0"], "ConfigError: kv_store.fp8_scale: applies only with kv_cache_dtype=fp8"),
    ],
)
def test_an_engine_switch_that_cannot_run_fails_the_job_naming_it_before_weights_load(tmp_path, capsys, args, reason):
    """Refused by the engine's validation: the job's failure record names the switch, status 1."""
    run_in_process(tmp_path, *args)
    assert f"FAILED ({tmp_path}/run): {reason}" in capsys.readouterr().out
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["status"] == "failed" and reason.removeprefix("ConfigError: ") in record["error"]


def run(tmp_path, *args, stdin=None):
    argv = [sys.executable, "run.py", *args, f"hydra.run.dir={tmp_path}/run"]
    env = dict(os.environ, ALLMOS_CACHE=str(tmp_path / "cache"), ALLMOS_MODELS=str(tmp_path / "models"))
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, input=stdin)


def test_run_py_end_to_end_exit_one_without_traceback_and_schemas_are_no_choices(tmp_path):
    proc = run(tmp_path, "workload.num_requests=0")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("allmos: workload.num_requests:")
    proc = run(tmp_path, "attention=sdpa_schema")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "allmos: attention: 'sdpa_schema' is not one of flash, sdpa, triton"
    help_text = run(tmp_path, "--help").stdout
    assert "attention: flash, sdpa, triton\n" in help_text and "_schema" not in help_text


@pytest.mark.parametrize(
    "override,line",
    [
        ("attention.num_splitz=4", "allmos: attention.num_splitz: unknown key; `python run.py --cfg job` shows"),
        ("workload.num_requests=abc", "allmos: workload.num_requests: Value 'abc' of type 'str' could not be"),
        ("workload=nano", "allmos: workload: 'nano' is not one of latency, nano_bench, serving, shared_prefix, smoke"),
    ],
)
def test_an_override_hydra_cannot_compose_is_one_line_naming_the_key(tmp_path, override, line):
    """What Hydra itself reports in several lines (a misspelt key without `+`, a value of the wrong type, a
    plugin or workload that does not exist) is checked before Hydra runs the job: one line, status 1."""
    proc = run(tmp_path, override)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith(line), proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory) -> str:
    """A tiny random Qwen3 with a word-level tokenizer of its own (no hub)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("chat_model")
    save_tiny_model(folder)
    vocab = {"[UNK]": 0} | {f"w{i}": i for i in range(1, 500)} | {"word": 500, "ä": 501}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(str(folder))
    return str(folder)


def test_over_long_prompt_is_refused_with_the_prompt_shortened(tmp_path, capsys, chat_model):
    prompt = tmp_path / "long.txt"
    prompt.write_text("word ä " * 2000)
    run_in_process(tmp_path, "mode=generate", f"model.path={chat_model}", f"prompt_file={prompt}", "max_tokens=4")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("allmos: prompt: 'word ä word ä") and "(14000 chars)" in line
    assert "4000 tokens; max_model_len=1024" in line and len(line) < 300


def test_generate_reads_the_prompt_from_stdin_and_prints_only_the_answer(tmp_path, chat_model):
    proc = run(tmp_path, "mode=generate", f"model.path={chat_model}", "prompt_file=-", "max_tokens=3", stdin="w1 w2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.split()) == 3, proc.stdout  # three generated words; logs and banners on stderr


def test_a_trace_going_backwards_is_refused_naming_its_line(tmp_path, capsys):
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        '{"arrival_s": 2.0, "prompt_len": 8, "output_len": 4}\n{"arrival_s": 1.0, "prompt_len": 8, "output_len": 4}\n'
    )
    run_in_process(tmp_path, "workload=trace", f"workload.trace={trace}")
    err = capsys.readouterr().err.strip()
    assert (
        err == f"allmos: workload.trace: {trace} line 2: arrival_s 1.0 goes backwards (the line before arrives at 2.0)"
    )
    assert not (tmp_path / "run" / "result.json").exists()
