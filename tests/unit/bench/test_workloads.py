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
