"""The step timeline's arithmetic over kernel intervals (the profiling itself needs a GPU), and the host-only
step timer."""

from allmos.microbench.step_timeline import busy_time, gaps, summarise

ROWS = [(0.0, 10.0, "a"), (5.0, 12.0, "b"), (15.0, 20.0, "c"), (30.0, 31.0, "a")]


def test_busy_time_counts_overlapping_kernels_once():
    assert busy_time(ROWS) == 10 + 2 + 5 + 1


def test_gaps_are_the_idle_stretches_longest_first_with_their_neighbours():
    assert gaps(ROWS, 5) == [
        {"us": 10.0, "after": "c", "before": "a"},
        {"us": 3.0, "after": "b", "before": "c"},
    ]


def test_summary_per_step_and_per_kernel_name():
    summary = summarise(ROWS, steps=2, top=5)
    assert summary["span_us_per_step"] == 15.5
    assert summary["busy_us_per_step"] == 9.0
    assert summary["idle_us_per_step"] == 6.5
    assert summary["kernels"][0] == {"name": "a", "calls_per_step": 1.0, "us_per_step": 5.5, "us_per_call": 5.5}


def test_host_step_times_the_engine_around_a_runner_that_returns_at_once():
    from allmos.microbench.host_step import host_us_per_step

    assert 0 < host_us_per_step(batch=4, context=40, steps=5, switches={"async_scheduling": True}) < 1e6
