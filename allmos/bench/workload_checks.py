"""Check a workload's keys before any weights load; each error names `workload.<key>`."""

from __future__ import annotations

import math

from allmos.bench.arrivals import ARRIVALS
from allmos.bench.request_trace import read_trace, resolve_trace_path
from allmos.bench.serving_workload import LENGTH_KEYS
from allmos.bench.workloads import KINDS, WorkloadSpec
from allmos.errors import ConfigError
from allmos.requests import is_int, is_real


def checked_workload(values: dict) -> dict:
    """The workload's keys, checked; a trace path comes back absolute, a single priority as [p, p]."""
    spec = WorkloadSpec(**values)
    if spec.kind not in KINDS:
        raise ConfigError("workload.kind", f"{spec.kind!r} is unknown; known: {', '.join(KINDS)}")
    check_sizes(spec)
    check_arrivals(spec)
    values = dict(values, priority=checked_priority(spec.priority, "workload.priority"))
    check_length_mix(spec)
    if spec.kind == "trace":
        values["trace"] = check_trace(spec)
    elif spec.trace is not None:
        raise ConfigError("workload.trace", f"only workload kind trace replays a trace (this one is {spec.kind})")
    return values


def check_sizes(spec: WorkloadSpec) -> None:
    at_least = {"input_len_min": 1, "output_len_min": 1, "token_id_max": 0, "warmup_requests": 0, "prefix_len": 0}
    if spec.num_requests is not None or spec.kind != "trace":  # a trace replays every line when it is null
        at_least = {"num_requests": 1, **at_least}
    for key, low in at_least.items():
        if not is_int(getattr(spec, key)) or getattr(spec, key) < low:
            raise ConfigError(f"workload.{key}", f"must be an integer of at least {low}, got {getattr(spec, key)!r}")
    for low, high in (("input_len_min", "input_len_max"), ("output_len_min", "output_len_max")):
        if getattr(spec, high) < getattr(spec, low):
            raise ConfigError(f"workload.{high}", f"{getattr(spec, high)} is below {low}={getattr(spec, low)}")
    if not 0.0 <= spec.prefix_share <= 1.0:
        raise ConfigError("workload.prefix_share", f"must be in [0, 1], got {spec.prefix_share}")
    if not spec.temperature >= 0.0 or spec.temperature == float("inf"):
        raise ConfigError("workload.temperature", f"must be finite and at least 0, got {spec.temperature}")
    if spec.concurrency is not None and spec.concurrency < 1:
        raise ConfigError("workload.concurrency", f"must be at least 1 or null, got {spec.concurrency}")


def check_arrivals(spec: WorkloadSpec) -> None:
    rate = spec.request_rate
    if not is_real(rate) or math.isnan(rate) or rate <= 0:
        raise ConfigError(
            "workload.request_rate", f"must be a number of requests/s above 0 (inf: all at once), got {rate!r}"
        )
    if spec.arrival not in ARRIVALS:
        raise ConfigError("workload.arrival", f"{spec.arrival!r} is unknown; known: {', '.join(ARRIVALS)}")
    b = spec.burstiness
    if not is_real(b) or not math.isfinite(b) or b <= 0:
        raise ConfigError("workload.burstiness", f"must be a finite number above 0, got {b!r}")
    if b != 1.0 and spec.arrival != "gamma":
        raise ConfigError(
            "workload.burstiness", f"shapes arrival=gamma only ({spec.arrival} is fixed); set workload.arrival=gamma"
        )
    if spec.max_concurrency is not None and (not is_int(spec.max_concurrency) or spec.max_concurrency < 1):
        raise ConfigError(
            "workload.max_concurrency", f"must be an integer of at least 1 or null, got {spec.max_concurrency!r}"
        )
    if spec.max_concurrency is not None and spec.concurrency is not None:
        raise ConfigError(
            "workload.max_concurrency",
            "caps requests in flight as they arrive; workload.concurrency runs waves to completion: set one of them",
        )
    if spec.concurrency is not None and spec.arrives_over_time:
        raise ConfigError(
            "workload.concurrency",
            "runs offline waves from time zero; requests arriving over time are capped by workload.max_concurrency",
        )
    if spec.kind == "trace" and not math.isinf(rate):
        raise ConfigError("workload.request_rate", "a trace brings its own arrival times; leave it at inf")


def checked_priority(priority, key: str) -> list[int] | None:
    """null, an integer p (every request p) or [low, high] (uniform integers); lower is more urgent
    for scheduler.policy=priority, as in vLLM."""
    if priority is None:
        return None
    if is_int(priority):
        return [priority, priority]
    if isinstance(priority, (list, tuple)) and len(priority) == 2 and all(is_int(p) for p in priority):
        if priority[0] > priority[1]:
            raise ConfigError(key, f"[low, high] with low above high: {list(priority)}")
        return [int(p) for p in priority]
    raise ConfigError(key, f"must be null, an integer or [low, high] of integers, got {priority!r}")


def check_length_mix(spec: WorkloadSpec) -> None:
    mix = spec.length_mix
    if mix is None:
        return
    if spec.kind != "serving":
        raise ConfigError(
            "workload.length_mix", f"only workload kind serving draws from a length mix (this one is {spec.kind})"
        )
    if not isinstance(mix, (list, tuple)) or not mix:
        raise ConfigError("workload.length_mix", f"must be a non-empty list of request classes, got {mix!r}")
    for i, entry in enumerate(mix):
        check_mix_entry(f"workload.length_mix[{i}]", entry)
    total = sum(entry["share"] for entry in mix)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError("workload.length_mix", f"the classes' shares add up to {total:g}, not 1")


def check_mix_entry(where: str, entry) -> None:
    known = ("share", *LENGTH_KEYS, "priority")
    if not isinstance(entry, dict):
        raise ConfigError(where, f"must be a mapping of {', '.join(known)}, got {entry!r}")
    for key in entry:
        if key not in known:
            raise ConfigError(f"{where}.{key}", f"unknown; a class has {', '.join(known)}")
    share = entry.get("share")
    if not is_real(share) or not 0 < share <= 1:
        raise ConfigError(f"{where}.share", f"must be a number in (0, 1], got {share!r}")
    for key in LENGTH_KEYS:
        if not is_int(entry.get(key)) or entry[key] < 1:
            raise ConfigError(f"{where}.{key}", f"must be an integer of at least 1, got {entry.get(key)!r}")
    for low, high in (("input_len_min", "input_len_max"), ("output_len_min", "output_len_max")):
        if entry[high] < entry[low]:
            raise ConfigError(f"{where}.{high}", f"{entry[high]} is below {low}={entry[low]}")
    if "priority" in entry and not is_int(entry["priority"]):
        raise ConfigError(f"{where}.priority", f"must be an integer, got {entry['priority']!r}")


def check_trace(spec: WorkloadSpec) -> str:
    if spec.priority is not None:
        raise ConfigError("workload.priority", "a trace gives each request's priority (a line's `priority`)")
    path = resolve_trace_path(spec.trace)
    read_trace(path)  # every line checked here, before any weights load
    return path
