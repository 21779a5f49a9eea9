"""Trace replay: the JSONL format, the shipped trace, and one error line (with its line number) for
every way a trace file can be wrong."""

import json

import pytest
from repo_paths import ROOT

from allmos.bench.request_trace import read_trace, resolve_trace_path, trace_requests
from allmos.bench.workload_checks import checked_workload
from allmos.bench.workloads import WorkloadSpec
from allmos.errors import ConfigError

SHIPPED = "data/traces/mixed_burst.jsonl"


def write_trace(tmp_path, *lines) -> str:
    path = tmp_path / "trace.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def trace_spec(path: str, **keys) -> WorkloadSpec:
    return WorkloadSpec(**({"kind": "trace", "trace": path, "num_requests": None} | keys))


def test_the_shipped_trace_replays_from_time_zero_in_order(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # a relative path is found from the repository when not from here
    path = resolve_trace_path(SHIPPED)
    assert path == f"{ROOT}/{SHIPPED}"
    requests = trace_requests(trace_spec(SHIPPED))
    assert len(requests) == 48 and requests[0].arrival_s == 0.0
    times = [r.arrival_s for r in requests]
    assert times == sorted(times) and 10.0 < times[-1] < 14.0
    assert {r.priority for r in requests} == {0, 1}


def test_lengths_token_ids_priorities_and_the_first_n_lines(tmp_path):
    path = write_trace(
        tmp_path,
        {"arrival_s": 100.0, "prompt_len": 5, "output_len": 3},
        {"arrival_s": 100.5, "prompt_token_ids": [7, 8, 9], "output_len": 2, "priority": -1},
        "",  # blank lines are skipped
        {"arrival_s": 101.0, "prompt_len": 4, "output_len": 1},
    )
    first, second, third = trace_requests(trace_spec(path, token_id_max=50))
    assert len(first.token_ids) == 5 and max(first.token_ids) <= 50 and first.params.max_tokens == 3
    assert (second.token_ids, second.priority, second.arrival_s) == ([7, 8, 9], -1, 0.5)
    assert first.priority == 0 and third.arrival_s == 1.0
    assert len(trace_requests(trace_spec(path, num_requests=2))) == 2
    assert trace_requests(trace_spec(path, token_id_max=50))[0].token_ids == first.token_ids  # seeded


@pytest.mark.parametrize(
    "lines,message",
    [
        ([{"arrival_s": 0, "prompt_len": 4, "output_len": 2}, "{not json"], "line 2: not valid JSON"),
        ([[1, 2]], "line 1: a line must be a JSON object"),
        ([{"arrival_s": 1.0, "prompt_len": 4, "output_len": 2}, {"arrival_s": 0.5, "prompt_len": 4, "output_len": 2}],
         "line 2: arrival_s 0.5 goes backwards"),
        ([{"arrival_s": -1, "prompt_len": 4, "output_len": 2}], "line 1: arrival_s must be a finite number"),
        ([{"prompt_len": 4, "output_len": 2}], "line 1: arrival_s must be"),
        ([{"arrival_s": 0, "prompt_len": 4, "output_len": 2, "priority": 1.5}], "line 1: priority must be an integer"),
        ([{"arrival_s": 0, "prompt_len": 4, "output_len": 2, "priority": "hi"}], "line 1: priority must be"),
        ([{"arrival_s": 0, "prompt_len": 4, "output_len": 2, "priority": True}], "line 1: priority must be an integer"),
        ([{"arrival_s": 0, "prompt_len": 4}], "line 1: output_len must be an integer of at least 1"),
        ([{"arrival_s": 0, "prompt_len": 0, "output_len": 2}], "line 1: prompt_len must be an integer of at least 1"),
        ([{"arrival_s": 0, "output_len": 2}], "line 1: give exactly one of prompt_len and prompt_token_ids"),
        ([{"arrival_s": 0, "prompt_len": 2, "prompt_token_ids": [1, 2], "output_len": 2}], "line 1: give exactly one"),
        ([{"arrival_s": 0, "prompt_token_ids": [1, "a"], "output_len": 2}], "line 1: prompt_token_ids must be"),
        ([{"arrival_s": 0, "prompt_len": 4, "output_length": 2}], "line 1: unknown key 'output_length'"),
    ],
)  # fmt: skip
def test_a_bad_trace_line_is_refused_naming_the_key_and_the_line(tmp_path, lines, message):
    path = write_trace(tmp_path, *lines)
    with pytest.raises(ConfigError) as error:
        read_trace(path)
    assert str(error.value).startswith(f"workload.trace: {path} {message}"), str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_or_empty_trace_is_refused_before_weights_load(tmp_path):
    with pytest.raises(ConfigError, match="workload.trace: '/no/such.jsonl' does not exist"):
        checked_workload({"kind": "trace", "trace": "/no/such.jsonl", "num_requests": None})
    with pytest.raises(ConfigError, match="workload.trace: workload kind trace needs a trace file"):
        checked_workload({"kind": "trace", "num_requests": None})
    with pytest.raises(ConfigError, match="holds no requests"):
        checked_workload({"kind": "trace", "trace": write_trace(tmp_path, ""), "num_requests": None})


def test_checked_workload_makes_the_trace_path_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    checked = checked_workload({"kind": "trace", "trace": SHIPPED, "num_requests": None})
    assert checked["trace"] == f"{ROOT}/{SHIPPED}"
