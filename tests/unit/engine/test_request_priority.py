"""A request's `priority` (an int, lower is served sooner under scheduler.policy=priority): given per
prompt to generate(), per request to Engine.add_request; anything else is refused naming `priority`
before any work starts."""

import pytest

from allmos import LLM, SamplingParams
from allmos.errors import RequestError

GREEDY = SamplingParams(temperature=0, max_tokens=3, ignore_eos=True)
PROMPTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]


@pytest.fixture(scope="module")
def llm(tiny_qwen3):
    options = dict(dtype="float32", block_size=16, num_kv_blocks=16, max_model_len=64, max_num_seqs=1)
    return LLM(tiny_qwen3, scheduler={"name": "continuous", "policy": "priority"}, **options)


def test_priorities_order_the_requests_and_outputs_stay_in_prompt_order(llm):
    started = []
    launch = llm.engine.runner.launch

    def watch(batch, prev=None):
        started.extend(s.priority for s in batch.seqs if s.num_computed_tokens == 0)
        return launch(batch, prev)

    llm.engine.runner.launch = watch
    try:
        ranked = llm.generate(PROMPTS, GREEDY, use_tqdm=False, priority=[3, 1, 2])
    finally:
        llm.engine.runner.launch = launch
    assert started == [1, 2, 3]  # one request at a time (max_num_seqs=1), lowest value first
    assert ranked == llm.generate(PROMPTS, GREEDY, use_tqdm=False)  # no priority: all 0


@pytest.mark.parametrize("priority", [1.5, "2", True, None])
def test_a_priority_that_is_not_an_int_is_refused_naming_the_request(llm, priority):
    steps = len(llm.engine.stats.trace)
    with pytest.raises(RequestError, match=r"^request 1: priority must be an int \(lower is served sooner\), got"):
        llm.generate(PROMPTS, GREEDY, use_tqdm=False, priority=[0, priority, 0])
    assert len(llm.engine.stats.trace) == steps and not llm.engine.has_unfinished()


def test_priorities_must_come_one_per_prompt(llm):
    with pytest.raises(ValueError, match=r"^priority: 2 priorities for 3 prompts"):
        llm.generate(PROMPTS, GREEDY, use_tqdm=False, priority=[0, 1])
    with pytest.raises(TypeError, match=r"^priority must be a list of ints, one per prompt, got int"):
        llm.generate(PROMPTS, GREEDY, use_tqdm=False, priority=1)
    assert not llm.engine.has_unfinished()


def test_the_engine_refuses_a_priority_that_is_not_an_int(llm):
    with pytest.raises(TypeError, match=r"^priority must be an int \(lower is served sooner\), got 'high'"):
        llm.engine.add_request([1, 2], GREEDY, priority="high")
    seq = llm.engine.add_request([1, 2], GREEDY, priority=-4)
    assert seq.priority == -4
    llm.engine.abort(seq)
    assert not llm.engine.has_unfinished()
