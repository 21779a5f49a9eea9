"""One source of defaults: everything on that runs on the device, the same in the YAML and the Python API."""

import dataclasses
import os

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from repo_paths import ROOT

from allmos.cli.job_spec import engine_options
from allmos.cli.machine_defaults import with_machine_defaults
from allmos.cli.schema import register_schemas
from allmos.config import ALL_OFF, CPU_DEFAULTS, PLUGIN_SWITCHES, EngineConfig, PluginChoice
from allmos.errors import ConfigError

TINY = OmegaConf.to_container(OmegaConf.load(os.path.join(ROOT, "conf", "model", "qwen3-tiny.yaml")).architecture)
ALL_ON = {
    "attention": "triton",
    "kv_store": "triton",
    "rope": "triton",
    "linear": "triton",
    "sampler": "triton",
    "cuda_graphs": True,
    "compile": True,
    "prefix_caching": True,
    "async_scheduling": True,
    "kv_cache_dtype": "auto",  # fp8 is approximate: a switch to measure, not part of everything on
}


@pytest.fixture(scope="module", autouse=True)
def schemas():
    register_schemas()


def composed(*overrides):
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def plain_switches(cfg) -> dict:
    return {k: cfg[k].name if k in PLUGIN_SWITCHES else cfg[k] for k in ALL_ON}


def test_engine_config_defaults_equal_the_composed_yaml_field_by_field():
    cfg = composed()
    for f in dataclasses.fields(EngineConfig):
        if f.name in ("model", "model_name", "architecture", "random_weights"):
            continue  # from the model group
        yaml_value = cfg[f.name]
        default = f.default
        if isinstance(default, PluginChoice):
            assert yaml_value.name == default.name, f.name
        else:
            assert yaml_value == default, f"{f.name}: conf/config.yaml says {yaml_value}, EngineConfig {default}"


def test_the_default_is_everything_on_and_presets_match_python():
    assert plain_switches(composed()) == ALL_ON
    assert plain_switches(composed("+preset=all_off")) == ALL_OFF
    cpu = composed("+machine=cpu")
    assert plain_switches(cpu) == CPU_DEFAULTS and cpu.workload.name == "smoke"
    # The two-switch ablation differs from the default in exactly those two switches.
    ablation = plain_switches(composed("attention=sdpa", "cuda_graphs=false"))
    assert {k for k in ALL_ON if ablation[k] != ALL_ON[k]} == {"attention", "cuda_graphs"}


def test_command_line_wins_over_presets():
    cfg = composed("+machine=cpu", "+preset=all_off", "attention=triton", "prefix_caching=true")
    assert cfg.attention.name == "triton" and cfg.prefix_caching is True and cfg.kv_store.name == "torch"


def test_cpu_machine_defaults_reach_single_runs_and_sweeps_before_the_overrides(capsys):
    argv = with_machine_defaults(["run.py", "-m", "attention=sdpa,triton", "cuda_graphs=true,false"], False)
    assert argv == ["run.py", "-m", "+machine=cpu", "attention=sdpa,triton", "cuda_graphs=true,false"]
    assert "+machine=cpu" in capsys.readouterr().err
    # --info takes an optional value: nothing may follow it that it would swallow.
    assert with_machine_defaults(["run.py", "--info"], False) == ["run.py", "+machine=cpu", "--info"]
    assert with_machine_defaults(["run.py", "--cfg", "job", "x=1"], False)[3] == "+machine=cpu"
    assert with_machine_defaults(["run.py", "--help"], False) == ["run.py", "+machine=cpu", "--help"]
    assert capsys.readouterr().out == ""  # stdout stays clean for --cfg job > cfg.yaml
    assert with_machine_defaults(["run.py", "x=1"], True) == ["run.py", "x=1"]
    assert with_machine_defaults(["run.py", "+machine=cpu"], False) == ["run.py", "+machine=cpu"]


def test_python_api_on_cpu_starts_from_cpu_defaults_and_says_so(capsys):
    config = EngineConfig.create(None, device="cpu", architecture=TINY, attention="triton")
    assert config.attention.name == "triton"  # what the caller set is kept (validate refuses it here)
    assert config.kv_store.name == "torch" and config.cuda_graphs is False and config.prefix_caching is True
    err = capsys.readouterr().err
    assert "on cpu the defaults become" in err and "kv_store=torch" in err and "attention=" not in err
    config = EngineConfig.create(None, device="cuda", architecture=TINY)
    assert config.kv_store.name == "triton" and config.cuda_graphs is True


def test_job_spec_options_on_cpu_are_what_was_composed():
    options = engine_options(composed("+machine=cpu", "model=qwen3-tiny"))
    config = EngineConfig.create(options.pop("model"), **options)
    assert {k: v for k, v in config.switches().items() if k in ALL_ON} == CPU_DEFAULTS


def engine(**options):
    from allmos.engine.engine import Engine
    from allmos.runners import make_runner

    config = EngineConfig.create(None, device="cpu", random_weights="always", num_kv_blocks=4, **options)
    return Engine(config, make_runner)


def test_max_model_len_follows_the_model_capped():
    assert engine(architecture=TINY | {"max_position_embeddings": 1024}).config.max_model_len == 1024
    assert engine(architecture=TINY | {"max_position_embeddings": 40960}).config.max_model_len == 4096
    assert engine(architecture=TINY, max_model_len=512).config.max_model_len == 512
    with pytest.raises(ConfigError, match="max_model_len: 2048 exceeds the model's max_position_embeddings"):
        engine(architecture=TINY | {"max_position_embeddings": 1024}, max_model_len=2048)


def test_plugin_options_without_a_name_keep_the_machines_default_plugin():
    from allmos.config import CPU_DEFAULTS, EngineConfig, PluginChoice

    config = EngineConfig.create(device="cpu", attention={"num_splits": 4})
    assert config.attention == PluginChoice(PluginChoice.of(CPU_DEFAULTS["attention"]).name, {"num_splits": 4})
    assert EngineConfig.create(device="cpu", attention={"name": "sdpa"}).attention == PluginChoice("sdpa")
