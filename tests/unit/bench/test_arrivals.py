"""Arrival times and the serving workload's requests: seeded, at the asked mean rate, as bursty as
the gamma shape says, and the same requests at every rate of a sweep."""

import math

import numpy as np
import pytest

from allmos.bench.arrivals import arrival_times
from allmos.bench.serving_workload import class_counts
from allmos.bench.workloads import WorkloadSpec, make_requests

MIX = [
    {"share": 0.75, "input_len_min": 8, "input_len_max": 16, "output_len_min": 4, "output_len_max": 8},
    {
        "share": 0.25,
        "input_len_min": 100,
        "input_len_max": 120,
        "output_len_min": 2,
        "output_len_max": 3,
        "priority": 7,
    },
]


def serving(**keys) -> WorkloadSpec:
    return WorkloadSpec(**({"kind": "serving", "num_requests": 40, "request_rate": 4.0} | keys))


def gaps(times: list[float]) -> np.ndarray:
    return np.diff([0.0, *times])


def test_a_seed_gives_the_same_arrivals_and_requests_every_time_and_another_seed_others():
    first, again = make_requests(serving(), 20000), make_requests(serving(), 20000)
    assert [(r.arrival_s, r.token_ids, r.params.max_tokens) for r in first] == [
        (r.arrival_s, r.token_ids, r.params.max_tokens) for r in again
    ]
    other = make_requests(serving(seed=1), 20000)
    assert [r.arrival_s for r in other] != [r.arrival_s for r in first]
    assert [r.token_ids for r in other] != [r.token_ids for r in first]


def test_arrival_times_are_pinned_for_seed_zero():
    """The same numbers on every machine: a change here changes every serving result."""
    times = arrival_times(4, 2.0, "poisson", 1.0, np.random.default_rng(0))
    assert times == pytest.approx([0.78988, 1.97435, 1.99736, 2.0], abs=1e-4)


def test_the_last_request_arrives_at_n_over_rate_and_times_never_go_backwards():
    for arrival, burstiness in (("poisson", 1.0), ("gamma", 0.3), ("gamma", 5.0)):
        times = arrival_times(500, 8.0, arrival, burstiness, np.random.default_rng(3))
        assert times[-1] == pytest.approx(500 / 8.0) and min(gaps(times)) >= 0.0
        assert gaps(times).mean() == pytest.approx(1 / 8.0)


@pytest.mark.parametrize("arrival,burstiness,cv", [("poisson", 1.0, 1.0), ("gamma", 0.25, 2.0), ("gamma", 4.0, 0.5)])
def test_gamma_burstiness_sets_the_spread_of_the_gaps(arrival, burstiness, cv):
    """Gamma gaps of shape k have a coefficient of variation 1/sqrt(k): burstier below 1, evener above."""
    g = gaps(arrival_times(20000, 10.0, arrival, burstiness, np.random.default_rng(0)))
    assert g.std() / g.mean() == pytest.approx(cv, rel=0.05)


def test_constant_arrivals_are_evenly_spaced_and_an_infinite_rate_sends_all_at_once():
    assert arrival_times(3, 4.0, "constant", 1.0, np.random.default_rng(0)) == [0.25, 0.5, 0.75]
    assert arrival_times(3, math.inf, "poisson", 1.0, np.random.default_rng(0)) == [0.0, 0.0, 0.0]


def test_a_rate_sweep_sends_the_same_requests_only_spaced_differently():
    slow, fast = make_requests(serving(request_rate=2.0), 20000), make_requests(serving(request_rate=8.0), 20000)
    assert [r.token_ids for r in slow] == [r.token_ids for r in fast]
    assert [r.arrival_s for r in slow] == pytest.approx([4 * r.arrival_s for r in fast])


def test_a_length_mix_gives_each_class_its_share_its_lengths_and_its_priority():
    requests = make_requests(serving(length_mix=MIX, priority=[0, 2]), 20000)
    long = [r for r in requests if len(r.token_ids) >= 100]
    assert len(long) == 10 and all(r.priority == 7 and r.params.max_tokens in (2, 3) for r in long)
    short = [r for r in requests if len(r.token_ids) < 100]
    assert all(8 <= len(r.token_ids) <= 16 and 4 <= r.params.max_tokens <= 8 for r in short)
    assert {r.priority for r in short} == {0, 1, 2}  # drawn from [low, high] where the class sets none
    assert [r.priority for r in requests] == [
        r.priority for r in make_requests(serving(length_mix=MIX, priority=[0, 2]), 20000)
    ]


def test_class_counts_add_up_to_the_requests():
    assert class_counts([0.8, 0.2], 10) == [8, 2]
    assert class_counts([0.8, 0.2], 7) == [6, 1]
    assert sum(class_counts([1 / 3] * 3, 10)) == 10


def test_offline_workloads_keep_their_draw_and_arrive_at_zero_unless_given_a_rate():
    offline = make_requests(WorkloadSpec(num_requests=5), 20000)
    assert not WorkloadSpec().arrives_over_time and all(r.arrival_s == 0.0 and r.priority == 0 for r in offline)
    timed = make_requests(WorkloadSpec(num_requests=5, request_rate=10.0), 20000)
    assert WorkloadSpec(request_rate=10.0).arrives_over_time
    assert [r.token_ids for r in timed] == [r.token_ids for r in offline]  # nano-vLLM's draw is untouched
    assert timed[-1].arrival_s == pytest.approx(0.5)
