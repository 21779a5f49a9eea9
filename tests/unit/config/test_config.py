"""Every config group option and every switch composes through Hydra and reaches the engine."""

import os

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from repo_paths import ROOT

from allmos.cli.job_spec import engine_options, job_spec
from allmos.cli.schema import engine_fields, register_schemas
from allmos.config import EngineConfig, PluginChoice

CONF = os.path.join(ROOT, "conf")
GROUPS = {
    group: sorted(f[:-5] for f in os.listdir(os.path.join(CONF, group)) if f.endswith(".yaml"))
    for group in ("attention", "kv_store", "rope", "linear", "scheduler", "sampler", "model", "workload")
}
SWITCH_VALUES = {
    "cuda_graphs": "true",
    "fused_graph_inputs": "false",
    "prefix_caching": "true",
    "compile": "true",
    "chunked_prefill": "true",
    "async_scheduling": "true",
    "device": "cpu",
    "dtype": "float64",
    "tensor_parallel_size": "2",
    "block_size": "16",
    "gpu_memory_utilization": "0.5",
    "cpu_kv_cache_gib": "0.25",
    "num_kv_blocks": "7",
    "max_model_len": "2048",
    "max_num_seqs": "8",
    "max_num_batched_tokens": "4096",
    "seed": "3",
}


@pytest.fixture(scope="module", autouse=True)
def schemas():
    register_schemas()


def composed(*overrides):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_option_composes(group, option):
    cfg = composed(f"{group}={option}")
    assert cfg[group].name == option
    options = engine_options(cfg)
    EngineConfig.create(options.pop("model"), **options)


def test_every_engine_switch_is_a_config_key():
    cfg = composed()
    for name, _, _ in engine_fields():
        assert name in cfg, f"{name} missing from conf/config.yaml"


def test_every_engine_switch_is_in_the_readme_table():
    with open(os.path.join(CONF, "..", "README.md")) as f:
        readme = f.read()
    for name, _, _ in engine_fields():
        assert f"| `{name}` |" in readme, f"{name} missing from the README's table of switches"


@pytest.mark.parametrize("switch,value", sorted(SWITCH_VALUES.items()))
def test_every_switch_reaches_the_engine_config(switch, value):
    cfg = composed(f"{switch}={value}")
    options = engine_options(cfg)
    config = EngineConfig.create(options.pop("model"), **options)
    assert str(getattr(config, switch)).lower() == value.lower() or getattr(config, switch) == float(value)


def test_plugin_options_are_validated_by_hydra():
    cfg = composed("attention=triton", "attention.num_splits=4", "attention.longest_first=false")
    assert cfg.attention.num_splits == 4 and cfg.attention.longest_first is False
    options = engine_options(cfg)
    config = EngineConfig.create(options.pop("model"), **options)
    assert config.attention.options == {
        "num_splits": 4,
        "longest_first": False,
        "fused_combine": True,
        "pdl": True,
        "decode_block_n": None,
        "prefetch_kv": True,
        "decode_max_registers": None,
        "decode_kv_buffers": None,
        "fuse_rope": False,
    }
    switches = config.switches()  # what a record holds: the options keep runs apart in the tables
    assert switches["attention"] == "triton" and switches["attention.longest_first"] is False
    assert switches["attention.num_splits"] == 4
    cfg = composed("kv_store=triton", "kv_store.fuse_rope=false")
    options = engine_options(cfg)
    assert EngineConfig.create(options.pop("model"), **options).switches()["kv_store.fuse_rope"] is False
    cfg = composed("linear=triton", "linear.gemm=false")
    options = engine_options(cfg)
    switches = EngineConfig.create(options.pop("model"), **options).switches()
    assert switches["linear.gemm"] is False and switches["linear.pdl"] is True
    cfg = composed("attention=triton", "attention.decode_block_n=128")
    options = engine_options(cfg)
    assert EngineConfig.create(options.pop("model"), **options).switches()["attention.decode_block_n"] == 128
    cfg = composed("attention=triton", "attention.decode_max_registers=168")
    options = engine_options(cfg)
    assert EngineConfig.create(options.pop("model"), **options).switches()["attention.decode_max_registers"] == 168
    cfg = composed("attention=triton", "attention.decode_kv_buffers=2")
    options = engine_options(cfg)
    assert EngineConfig.create(options.pop("model"), **options).switches()["attention.decode_kv_buffers"] == 2
    cfg = composed("attention=triton", "attention.prefetch_kv=false")
    options = engine_options(cfg)
    assert EngineConfig.create(options.pop("model"), **options).switches()["attention.prefetch_kv"] is False
    cfg = composed("attention=triton", "attention.fuse_rope=true")
    options = engine_options(cfg)
    assert EngineConfig.create(options.pop("model"), **options).switches()["attention.fuse_rope"] is True
    options = engine_options(composed())
    assert EngineConfig.create(options.pop("model"), **options).switches()["rope.fuse_qkv"] is True  # the default
    options = engine_options(composed("rope.fuse_qkv=false"))
    assert EngineConfig.create(options.pop("model"), **options).switches()["rope.fuse_qkv"] is False
    with pytest.raises(ConfigCompositionException):
        composed("attention.no_such_option=1")
    with pytest.raises(ConfigCompositionException):
        composed("attention.num_splits=many")


def test_wrong_switch_name_or_value_fails_in_hydra():
    with pytest.raises(ConfigCompositionException):
        composed("no_such_switch=1")
    with pytest.raises(ConfigCompositionException):
        composed("compile=maybe")
    with pytest.raises(ConfigCompositionException):
        composed("attention=no_such_backend")


def test_cuda_graphs_takes_true_false_or_forward():
    from allmos.config import graph_runner_choice
    from allmos.errors import ConfigError
    from allmos.validation import check_values

    assert graph_runner_choice(True) == PluginChoice("cuda_graph", {"scope": "step", "fused_inputs": True})
    forward_copying = PluginChoice("cuda_graph", {"scope": "forward", "fused_inputs": False})
    assert graph_runner_choice("forward", False) == forward_copying
    assert graph_runner_choice(False) == PluginChoice("eager")
    assert composed("cuda_graphs=forward").cuda_graphs == "forward"
    for value in (True, False, "forward"):
        check_values(EngineConfig.create(device="cpu", cuda_graphs=value))
    with pytest.raises(ConfigError, match="cuda_graphs"):
        check_values(EngineConfig.create(device="cpu", cuda_graphs="maybe"))


def test_job_spec_carries_the_resolved_config():
    spec = job_spec(composed("model=qwen3-tiny", "workload=smoke"), {"num": 0})
    assert spec.model_name == "qwen3-tiny" and spec.workload["name"] == "smoke"
    assert spec.config["model"]["name"] == "qwen3-tiny"
    assert OmegaConf.create(spec.config)  # plain data, JSON-able


def test_each_rank_gets_its_own_cuda_device():
    import torch

    from allmos.engine.model_runner import rank_device
    from allmos.layers.parallel import ParallelInfo

    assert rank_device("cuda", ParallelInfo()) == torch.device("cuda", 0)
    assert rank_device("cuda", ParallelInfo(1, 2)) == torch.device("cuda", 1)
    assert rank_device("cpu", ParallelInfo(1, 2)) == torch.device("cpu")
