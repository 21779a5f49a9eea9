"""Replay a request trace: a JSONL file, one request a line.

    {"arrival_s": 0.0, "prompt_len": 812, "output_len": 64, "priority": 1}
    {"arrival_s": 0.42, "prompt_token_ids": [9, 4711, 88], "output_len": 16}

`arrival_s` (seconds, never going backwards; the first line's time is the run's start), either
`prompt_len` (its tokens drawn from the workload's seed) or `prompt_token_ids`, `output_len`, and
an optional integer `priority` (0 when absent). Every error names the line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass

from allmos.bench.workloads import Request, WorkloadSpec, sampling, streams
from allmos.errors import ConfigError
from allmos.requests import is_int, is_real

KEY = "workload.trace"
LINE_KEYS = ("arrival_s", "prompt_len", "prompt_token_ids", "output_len", "priority")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class TraceLine:
    arrival_s: float
    prompt_len: int
    prompt_token_ids: list[int] | None
    output_len: int
    priority: int


def resolve_trace_path(path: str | None) -> str:
    """An absolute path: a relative one is taken from the working folder, else from the repository."""
    if not path:
        raise ConfigError(KEY, "workload kind trace needs a trace file (workload.trace=PATH)")
    path = os.path.expanduser(path)
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(ROOT, path)
    if not os.path.isfile(path):
        raise ConfigError(KEY, f"{path!r} does not exist")
    return os.path.abspath(path)


def read_trace(path: str) -> list[TraceLine]:
    lines: list[TraceLine] = []
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if text.strip():
                lines.append(parse_line(path, number, text, lines[-1].arrival_s if lines else None))
    if not lines:
        raise ConfigError(KEY, f"{path} holds no requests")
    return lines


def parse_line(path: str, number: int, text: str, previous: float | None) -> TraceLine:
    def refuse(reason: str) -> ConfigError:
        return ConfigError(KEY, f"{path} line {number}: {reason}")

    try:
        row = json.loads(text)
    except ValueError as error:
        raise refuse(f"not valid JSON ({error})") from None
    if not isinstance(row, dict):
        raise refuse(f"a line must be a JSON object, got {type(row).__name__}")
    unknown = sorted(set(row) - set(LINE_KEYS))
    if unknown:
        raise refuse(f"unknown key {unknown[0]!r}; keys: {', '.join(LINE_KEYS)}")
    arrival = row.get("arrival_s")
    if not is_real(arrival) or not math.isfinite(arrival) or arrival < 0:
        raise refuse(f"arrival_s must be a finite number of seconds >= 0, got {arrival!r}")
    if previous is not None and arrival < previous:
        raise refuse(f"arrival_s {arrival} goes backwards (the line before arrives at {previous})")
    ids = row.get("prompt_token_ids")
    if ("prompt_len" in row) == (ids is not None):
        raise refuse("give exactly one of prompt_len and prompt_token_ids")
    if ids is not None and (not isinstance(ids, list) or not ids or not all(is_int(t) and t >= 0 for t in ids)):
        raise refuse("prompt_token_ids must be a non-empty list of token ids (integers >= 0)")
    prompt_len = len(ids) if ids is not None else row["prompt_len"]
    for key, value in (("prompt_len", prompt_len), ("output_len", row.get("output_len"))):
        if not is_int(value) or value < 1:
            raise refuse(f"{key} must be an integer of at least 1, got {value!r}")
    priority = row.get("priority", 0)
    if not is_int(priority):
        raise refuse(f"priority must be an integer, got {priority!r}")
    return TraceLine(float(arrival), prompt_len, ids, row["output_len"], priority)


def trace_lines(spec: WorkloadSpec) -> list[TraceLine]:
    lines = read_trace(resolve_trace_path(spec.trace))
    return lines if spec.num_requests is None else lines[: spec.num_requests]


def trace_requests(spec: WorkloadSpec) -> list[Request]:
    """The trace's requests, arrival times counted from its first line."""
    lines = trace_lines(spec)
    rng = streams(spec.seed)[2]
    start = lines[0].arrival_s
    requests = []
    for line in lines:
        tokens = line.prompt_token_ids or rng.integers(0, spec.token_id_max + 1, size=line.prompt_len).tolist()
        params = sampling(spec, line.output_len)
        requests.append(Request(tokens, params, arrival_s=line.arrival_s - start, priority=line.priority))
    return requests


def trace_digest(path: str) -> str:
    """sha256 of the trace file (12 hex digits), for the record: which trace ran."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]
