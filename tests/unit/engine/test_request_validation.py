"""The Python API refuses bad requests up front, naming index and field; one bad request never poisons
the engine; a closed LLM refuses to generate."""

import math

import pytest

from allmos import LLM, SamplingParams
from allmos.errors import RequestError
from allmos.requests import MAX_LOGPROBS, RequestFailed


@pytest.fixture(scope="module")
def llm(tiny_qwen3):
    return LLM(tiny_qwen3, dtype="float32", block_size=16, num_kv_blocks=16, max_model_len=256)


GREEDY = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)

BAD_PARAMS = [
    (SamplingParams(logprobs=10**6), f"logprobs must be an integer in [0, {MAX_LOGPROBS}], got 1000000"),
    (SamplingParams(logprobs=-1), "logprobs must be an integer in [0, 20], got -1"),
    (SamplingParams(logprobs=2.5), "logprobs must be an integer in [0, 20], got 2.5"),
    (SamplingParams(temperature=math.nan), "temperature must be a finite number, got nan"),
    (SamplingParams(temperature=math.inf), "temperature must be a finite number, got inf"),
    (SamplingParams(temperature=-math.inf), "temperature must be a finite number, got -inf"),
    (SamplingParams(temperature="0.5"), "temperature must be a finite number, got '0.5'"),
    (SamplingParams(max_tokens=2.5), "max_tokens must be an integer, got 2.5"),
    (SamplingParams(max_tokens=True), "max_tokens must be an integer, got True"),
    (SamplingParams(max_tokens=0), "max_tokens must be at least 1, got 0"),
    (SamplingParams(ignore_eos="no"), "ignore_eos must be True or False, got 'no'"),
    (SamplingParams(ignore_eos=1), "ignore_eos must be True or False, got 1"),
    ({"temperature": 0}, "sampling_params must be a SamplingParams, got dict"),
]


def refused(llm, prompts, params, message):
    steps_before = len(llm.engine.stats.trace)
    with pytest.raises(RequestError) as e:
        llm.generate(prompts, params, use_tqdm=False)
    assert message in str(e.value)
    assert len(llm.engine.stats.trace) == steps_before and not llm.engine.has_unfinished()


@pytest.mark.parametrize("params,message", BAD_PARAMS)
def test_bad_sampling_params_are_refused_naming_index_and_field(llm, params, message):
    refused(llm, [[5, 6, 7], [8, 9]], [GREEDY, params], f"request 1: {message}")


BAD_PROMPTS = [
    ([1.9, 2.7], "token id 1.9 at position 0 is a float, not an int"),
    ([4, "5"], "token id '5' at position 1 is a str, not an int"),
    ([4, True], "token id True at position 1 is a bool, not an int"),
    (None, "the prompt is None"),
    (7, "the prompt is a int; give a string or a list of token ids"),
]


@pytest.mark.parametrize("prompt,message", BAD_PROMPTS)
def test_bad_prompts_are_refused_naming_index(llm, prompt, message):
    refused(llm, [[5, 6, 7], prompt], GREEDY, f"request 1: {message}")


def test_a_flat_list_of_ints_is_one_tokenized_prompt_as_in_vllm(llm):
    flat = llm.generate([1, 2, 3], GREEDY, use_tqdm=False)
    nested = llm.generate([[1, 2, 3]], GREEDY, use_tqdm=False)
    assert len(flat) == 1 and flat == nested


def test_a_flat_list_with_a_float_is_refused_as_one_prompt(llm):
    refused(llm, [1, 2.5, 3], GREEDY, "request 0: token id 2.5 at position 1 is a float")


def test_logprobs_up_to_the_maximum_work(llm):
    out = llm.generate([[5, 6, 7]], SamplingParams(temperature=0, max_tokens=2, logprobs=MAX_LOGPROBS), use_tqdm=False)
    assert [len(step) for step in out[0]["logprobs"]] == [MAX_LOGPROBS, MAX_LOGPROBS]


def fail_batches_with(llm, monkeypatch, poison: int):
    """Make every step whose batch holds a prompt containing `poison` fail inside the runner."""
    runner = llm.engine.runner
    real = runner.launch

    def launch(batch, prev=None):
        if any(poison in seq.token_ids[: seq.num_prompt_tokens] for seq in batch.seqs):
            raise RuntimeError("injected failure")
        return real(batch, prev)

    monkeypatch.setattr(runner, "launch", launch)


@pytest.mark.parametrize("async_scheduling,prefix_caching", [(False, False), (True, False), (True, True)])
def test_a_request_failing_in_a_step_is_removed_and_later_calls_work(
    tiny_qwen3, monkeypatch, async_scheduling, prefix_caching
):
    # one request a step, so the failed one is known
    options = dict(max_num_seqs=1, async_scheduling=async_scheduling, prefix_caching=prefix_caching)
    llm = LLM(tiny_qwen3, dtype="float32", num_kv_blocks=16, max_model_len=256, **options)
    expected = llm.generate([[5, 6, 7], [8, 9, 10]], GREEDY, use_tqdm=False)
    fail_batches_with(llm, monkeypatch, poison=13)
    with pytest.raises(RequestFailed, match=r"request 1: failed inside an engine step \(RuntimeError: injected"):
        llm.generate([[5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 8], [13, 14]], GREEDY, use_tqdm=False)
    engine = llm.engine
    assert not engine.has_unfinished() and engine.block_manager.num_used_blocks == 0
    assert llm.generate([[5, 6, 7], [8, 9, 10]], GREEDY, use_tqdm=False) == expected


def test_the_engine_keeps_serving_requests_outside_the_failed_step(tiny_qwen3, monkeypatch):
    from allmos.engine.engine import StepFailed

    llm = LLM(tiny_qwen3, dtype="float32", num_kv_blocks=16, max_model_len=256, max_num_seqs=1)
    expected = llm.generate([[8, 9, 10]], GREEDY, use_tqdm=False)
    fail_batches_with(llm, monkeypatch, poison=13)
    engine = llm.engine
    bad = engine.add_request([13, 14], GREEDY)
    good = engine.add_request([8, 9, 10], GREEDY)
    with pytest.raises(StepFailed) as e:
        while engine.has_unfinished():
            engine.step()
    assert e.value.seqs == [bad] and bad.is_finished and "injected failure" in bad.error
    while engine.has_unfinished():
        engine.step()
    assert good.error is None and good.output_token_ids == expected[0]["token_ids"]


def test_generate_after_close_is_refused(tiny_qwen3):
    llm = LLM(tiny_qwen3, dtype="float32", num_kv_blocks=8, max_model_len=256)
    llm.generate([[1, 2, 3]], GREEDY, use_tqdm=False)
    llm.close()
    with pytest.raises(RuntimeError, match=r"closed \(close\(\) was called\)"):
        llm.generate([[1, 2, 3]], GREEDY, use_tqdm=False)


def test_token_ids_are_checked_with_the_fast_path_and_the_slow_path_alike():
    from allmos.requests import bad_token_id

    assert bad_token_id([0, 5, 9], 10) is None  # plain ints: map/min/max
    assert bad_token_id([0, 10, 3], 10) == 10
    assert bad_token_id([0, -1], 10) == -1
    assert bad_token_id([1, True, 3], 10) is True  # a bool is not a token id
    assert bad_token_id([1, 2.0], 10) == 2.0
    np = pytest.importorskip("numpy")
    assert bad_token_id([np.int64(3), 4], 10) is None  # numpy ints are ints (the slow path)
    assert bad_token_id([np.int64(30)], 10) == 30
