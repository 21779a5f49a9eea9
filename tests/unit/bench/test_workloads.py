"""Warm-up requests: what runs before timing must meet the shapes the timed run will."""

from allmos.bench.workloads import WorkloadSpec, warmup_requests


def test_warmup_spans_the_prompt_lengths_and_ends_at_batch_one():
    spec = WorkloadSpec(input_len_min=100, input_len_max=1024, token_id_max=10000, warmup_requests=1)
    warm = warmup_requests(spec)
    assert [len(r.token_ids) for r in warm] == [100, 1024]  # two rows even when one is asked for
    assert warm[0].params.max_tokens > max(r.params.max_tokens for r in warm[1:])  # last steps: batch 1
    assert all(r.params.ignore_eos and min(r.token_ids) > 0 and max(r.token_ids) <= 10000 for r in warm)


def test_no_warmup_when_none_is_asked_for():
    assert warmup_requests(WorkloadSpec(warmup_requests=0)) == []


def test_more_warmup_requests_when_asked_for():
    warm = warmup_requests(WorkloadSpec(input_len_min=16, input_len_max=64, warmup_requests=4))
    assert [len(r.token_ids) for r in warm] == [16, 64, 32, 40]


def test_warmup_spans_a_length_mix_and_a_trace():
    mix = [
        {"share": 0.5, "input_len_min": 20, "input_len_max": 30, "output_len_min": 1, "output_len_max": 2},
        {"share": 0.5, "input_len_min": 300, "input_len_max": 400, "output_len_min": 1, "output_len_max": 2},
    ]
    assert [len(r.token_ids) for r in warmup_requests(WorkloadSpec(kind="serving", length_mix=mix))] == [20, 400]
    trace = WorkloadSpec(kind="trace", trace="data/traces/mixed_burst.jsonl", num_requests=None)
    lengths = [len(r.token_ids) for r in warmup_requests(trace)]
    assert lengths[0] < 32 and 1024 <= lengths[1] <= 2048
