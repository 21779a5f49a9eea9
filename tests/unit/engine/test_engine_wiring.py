"""How the engine is put together: it runs whatever runner the factory handed to it builds, every
component reports into the one stats owner the engine made, and one `reset_stats()` starts every
counter afresh (the step trace, the scheduler's, the block manager's and the graph runner's), as a
benchmark does after its warm-up."""

import pytest

from allmos import LLM, SamplingParams
from allmos.config import EngineConfig
from allmos.engine.engine import Engine
from allmos.engine.model_runner import ModelRunner

SETTINGS = dict(dtype="float64", max_model_len=256, num_kv_blocks=64, block_size=8)
PARAMS = SamplingParams(temperature=0, max_tokens=4)


def test_the_engine_runs_the_runner_its_factory_builds(tiny_qwen3):
    built = []

    def make_runner(config, hf_config, weights, stats):
        built.append(ModelRunner(config, hf_config, weights, stats=stats))
        return built[-1]

    engine = Engine(EngineConfig.create(tiny_qwen3, **SETTINGS), make_runner)
    assert engine.runner is built[0]
    engine.add_request([1, 2, 3], PARAMS)
    while engine.has_unfinished():
        engine.step()
    assert engine.counters()["eager_forwards"] > 0
    owners = (engine.scheduler.stats, engine.block_manager.stats, engine.runner.graph_runner.stats)
    assert all(owner is engine.stats for owner in owners)


def test_a_counter_outside_the_records_list_is_refused():
    from allmos.stats import EngineStats

    with pytest.raises(KeyError, match="not a counter"):
        EngineStats().count("preemption")


def test_reset_stats_zeroes_every_counter(tiny_qwen3):
    llm = LLM(tiny_qwen3, prefix_caching=True, **SETTINGS)
    prompt = list(range(1, 40))
    for _ in range(2):  # the second run hits the prefix cache
        llm.generate([prompt], PARAMS, use_tqdm=False)
    before = llm.engine.counters()
    assert before["prompt_tokens"] > 0 and before["eager_forwards"] > 0 and before["cached_prompt_tokens"] > 0
    llm.engine.reset_stats()
    after = llm.engine.counters()
    sizes = ("num_kv_blocks", "max_model_len")  # what the engine is, not what it counted
    counts = {k: v for k, v in after.items() if type(v) is int and k not in sizes}
    assert counts and set(counts.values()) == {0}, counts
    assert llm.engine.block_manager.stats.counts["cached_prompt_tokens"] == 0 and llm.engine.stats.trace == []
    llm.generate([prompt], PARAMS, use_tqdm=False)
    assert llm.engine.counters()["cached_prompt_tokens"] > 0  # counting goes on after the reset
