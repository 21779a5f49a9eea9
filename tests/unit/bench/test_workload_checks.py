"""Serving keys and SLOs are checked before any weights load, each error naming its key."""

import math

import pytest

from allmos.bench.slo import Slo, checked_slo
from allmos.bench.workload_checks import checked_workload
from allmos.errors import ConfigError

MIX = [
    {"share": 0.5, "input_len_min": 8, "input_len_max": 16, "output_len_min": 4, "output_len_max": 8},
    {"share": 0.5, "input_len_min": 100, "input_len_max": 120, "output_len_min": 2, "output_len_max": 3},
]


def serving(**keys) -> dict:
    return {"kind": "serving", "num_requests": 8, "request_rate": 4.0} | keys


@pytest.mark.parametrize(
    "keys,key,says",
    [
        ({"request_rate": 0.0}, "workload.request_rate", "above 0"),
        ({"request_rate": -3.0}, "workload.request_rate", "above 0"),
        ({"request_rate": math.nan}, "workload.request_rate", "above 0"),
        ({"arrival": "bursty"}, "workload.arrival", "'bursty' is unknown"),
        ({"arrival": "gamma", "burstiness": 0.0}, "workload.burstiness", "above 0"),
        ({"arrival": "gamma", "burstiness": -1.0}, "workload.burstiness", "above 0"),
        ({"burstiness": 0.5}, "workload.burstiness", "set workload.arrival=gamma"),
        ({"max_concurrency": 0}, "workload.max_concurrency", "at least 1"),
        ({"max_concurrency": 2, "concurrency": 1}, "workload.max_concurrency", "set one of them"),
        ({"concurrency": 1}, "workload.concurrency", "workload.max_concurrency"),
        ({"kind": "latency", "concurrency": 1, "priority": [0, 1]}, "workload.concurrency", "offline waves"),
        ({"priority": 1.5}, "workload.priority", "must be null, an integer or [low, high]"),
        ({"priority": [0, "x"]}, "workload.priority", "must be null, an integer"),
        ({"priority": [3, 1]}, "workload.priority", "low above high"),
        ({"priority": True}, "workload.priority", "must be null, an integer"),
        ({"length_mix": []}, "workload.length_mix", "non-empty list"),
        ({"length_mix": [MIX[0]]}, "workload.length_mix", "add up to 0.5, not 1"),
        ({"length_mix": [MIX[0] | {"share": 0}, MIX[1]]}, "workload.length_mix[0].share", "(0, 1]"),
        ({"length_mix": [MIX[0] | {"input_len_max": 4}, MIX[1]]}, "workload.length_mix[0].input_len_max", "below"),
        ({"length_mix": [MIX[0], MIX[1] | {"priority": "high"}]}, "workload.length_mix[1].priority", "an integer"),
        ({"length_mix": [MIX[0], MIX[1] | {"weight": 1}]}, "workload.length_mix[1].weight", "unknown"),
        ({"kind": "random_tokens", "length_mix": MIX}, "workload.length_mix", "only workload kind serving"),
        ({"trace": "x.jsonl"}, "workload.trace", "only workload kind trace"),
        ({"kind": "trace", "trace": "data/traces/mixed_burst.jsonl"}, "workload.request_rate", "own arrival times"),
        ({"kind": "trace", "trace": "data/traces/mixed_burst.jsonl", "request_rate": math.inf, "priority": 1},
         "workload.priority", "a trace gives each request's priority"),
        ({"num_requests": None}, "workload.num_requests", "at least 1"),
    ],
)  # fmt: skip
def test_a_bad_serving_key_is_refused_naming_it(keys, key, says):
    with pytest.raises(ConfigError) as error:
        checked_workload(serving(**keys))
    assert error.value.switch == key and says in str(error.value), str(error.value)


def test_good_serving_keys_pass_and_a_single_priority_becomes_a_range():
    assert checked_workload(serving(priority=3))["priority"] == [3, 3]
    assert checked_workload(serving(priority=[0, 4], length_mix=MIX, arrival="gamma", burstiness=0.5))
    assert checked_workload(serving(request_rate=math.inf, max_concurrency=4))


@pytest.mark.parametrize("key,value", [("ttft_ms", 0), ("tpot_ms", -1.0), ("e2e_ms", math.inf), ("ttft_ms", "fast")])
def test_an_slo_of_zero_or_less_is_refused_naming_it(key, value):
    with pytest.raises(ConfigError) as error:
        checked_slo({key: value})
    assert error.value.switch == f"slo.{key}" and "above 0" in str(error.value)


def test_a_request_meets_the_slo_only_when_every_set_objective_holds():
    slo = Slo(ttft_ms=100.0, tpot_ms=10.0)
    assert slo.judged and not Slo().judged
    assert slo.met(100.0, 10.0, 1e9)  # e2e is not judged; limits are inclusive
    assert not slo.met(100.1, 5.0, 1.0) and not slo.met(50.0, 10.5, 1.0)
    assert slo.met(50.0, None, 1.0)  # one output token: no TPOT, counted as 0 (as vLLM's --goodput)
    assert not Slo(e2e_ms=5.0).met(1.0, 1.0, None)  # an unfinished request never meets an SLO
    assert checked_slo(None) == {"ttft_ms": None, "tpot_ms": None, "e2e_ms": None}
