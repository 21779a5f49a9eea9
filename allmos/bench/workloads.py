"""Workloads: the requests a benchmark run sends, drawn reproducibly from a seed.

`random_tokens` draws exactly as nano-vLLM's bench.py does (Python's `random`, seed 0: every
prompt's length and tokens first, then every output length), so the figures compare directly.
`serving` draws its lengths (or a `length_mix` of request classes) with numpy, `trace` replays a
JSONL file (allmos.bench.request_trace). Every kind but `trace` can be given arrival times
(`request_rate`, `arrival`, `burstiness`) and priorities; they come from their own random streams,
so changing the rate never changes the requests themselves.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np

from allmos.bench.arrivals import arrival_times
from allmos.errors import ConfigError
from allmos.sampling_params import SamplingParams

KINDS = ("random_tokens", "shared_prefix", "latency", "serving", "trace")
ARRIVING_KINDS = ("serving", "trace")  # always driven by arrival time, even at an infinite rate


@dataclass
class WorkloadSpec:
    name: str = "smoke"
    kind: str = "random_tokens"  # random_tokens | shared_prefix | latency | serving | trace
    num_requests: Optional[int] = 4  # trace: the first num_requests lines; null replays them all
    input_len_min: int = 16
    input_len_max: int = 64
    output_len_min: int = 16
    output_len_max: int = 32
    token_id_max: int = 10000
    seed: int = 0
    temperature: float = 0.6
    ignore_eos: bool = True
    warmup_requests: int = 1
    prefix_len: int = 0  # shared_prefix: tokens every sharing request starts with
    prefix_share: float = 0.0  # shared_prefix: share of requests that start with the prefix
    concurrency: Optional[int] = None  # None: all requests at once; k: k at a time (1 = single stream)
    request_rate: float = math.inf  # requests/s arriving over the run; inf: all at time zero
    arrival: str = "poisson"  # poisson | gamma | constant (the gaps between arrivals)
    burstiness: float = 1.0  # arrival=gamma: the gaps' shape (1 = Poisson, < 1 burstier)
    max_concurrency: Optional[int] = None  # most requests in the engine at once; the rest wait (queueing counts)
    length_mix: Any = None  # serving: [{share, input_len_min, input_len_max, output_len_min, output_len_max, priority}]
    priority: Any = None  # null: every request 0; [low, high]: an integer drawn uniformly per request
    trace: Optional[str] = None  # kind=trace: a JSONL file, one request a line (README: trace format)

    @property
    def arrives_over_time(self) -> bool:
        """Whether the arrival-driven harness runs it (else every request is added at once, as offline)."""
        keys_set = self.max_concurrency is not None or self.priority is not None
        return self.kind in ARRIVING_KINDS or not math.isinf(self.request_rate) or keys_set


@dataclass(frozen=True)
class Request:
    token_ids: list[int]
    params: SamplingParams
    arrival_s: float = 0.0  # seconds after the run starts
    priority: Optional[int] = None  # None until `scheduled` draws it (a length_mix class may set it first)


def make_requests(spec: WorkloadSpec, vocab_size: int) -> list[Request]:
    if spec.kind not in KINDS:
        raise ConfigError("workload.kind", f"{spec.kind!r} is unknown; known: {', '.join(KINDS)}")
    if spec.token_id_max >= vocab_size:
        raise ConfigError(
            "workload.token_id_max", f"token ids up to {spec.token_id_max} exceed the vocabulary ({vocab_size})"
        )
    if spec.kind == "trace":
        from allmos.bench.request_trace import trace_requests

        return trace_requests(spec)
    if spec.kind == "serving":
        from allmos.bench.serving_workload import serving_requests

        requests = serving_requests(spec, streams(spec.seed)[2])
    else:
        requests = shared_prefix_requests(spec) if spec.kind == "shared_prefix" else random_token_requests(spec)
    return scheduled(spec, requests)


def streams(seed: int) -> list[np.random.Generator]:
    """Independent generators for arrival times, priorities and (serving) the requests themselves."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


def scheduled(spec: WorkloadSpec, requests: list[Request]) -> list[Request]:
    """The requests with their arrival times and priorities (a length_mix class's priority wins)."""
    arrivals_rng, priority_rng, _ = streams(spec.seed)
    times = arrival_times(len(requests), spec.request_rate, spec.arrival, spec.burstiness, arrivals_rng)
    drawn = [0] * len(requests)
    if spec.priority is not None:
        low, high = spec.priority
        drawn = priority_rng.integers(low, high + 1, size=len(requests)).tolist()
    return [
        replace(r, arrival_s=t, priority=r.priority if r.priority is not None else p)
        for r, t, p in zip(requests, times, drawn)
    ]


def random_token_requests(spec: WorkloadSpec) -> list[Request]:
    rng = random.Random(spec.seed)
    prompts = [
        [rng.randint(0, spec.token_id_max) for _ in range(rng.randint(spec.input_len_min, spec.input_len_max))]
        for _ in range(spec.num_requests)
    ]
    outputs = [rng.randint(spec.output_len_min, spec.output_len_max) for _ in range(spec.num_requests)]
    return [Request(p, sampling(spec, n)) for p, n in zip(prompts, outputs)]


def shared_prefix_requests(spec: WorkloadSpec) -> list[Request]:
    """A `prefix_share` share of the requests begin with one common prefix of `prefix_len` tokens."""
    rng = random.Random(spec.seed)
    prefix = [rng.randint(0, spec.token_id_max) for _ in range(spec.prefix_len)]
    sharing = round(spec.num_requests * spec.prefix_share)
    requests = []
    for i in range(spec.num_requests):
        suffix = [rng.randint(0, spec.token_id_max) for _ in range(rng.randint(spec.input_len_min, spec.input_len_max))]
        tokens = prefix + suffix if i < sharing else [rng.randint(0, spec.token_id_max) for _ in prefix] + suffix
        requests.append(Request(tokens, sampling(spec, rng.randint(spec.output_len_min, spec.output_len_max))))
    rng.shuffle(requests)
    return requests


def sampling(spec: WorkloadSpec, max_tokens: int) -> SamplingParams:
    return SamplingParams(temperature=spec.temperature, max_tokens=max_tokens, ignore_eos=spec.ignore_eos)


def warmup_requests(spec: WorkloadSpec) -> list[Request]:
    """Requests run before timing starts (not counted), so lazy setup stays out of the figures.

    At least two when any are asked for: torch.compile specialises a dimension of size one, so a
    single warm-up row would leave the batched shapes to be compiled inside the timed run. Their
    prompts have the workload's shortest and longest lengths, so prefill meets multi-block block
    tables before timing, as the timed steps will.
    """
    if spec.warmup_requests < 1:
        return []
    lengths = [*prompt_length_range(spec)] + [16 + 8 * i for i in range(2, spec.warmup_requests)]
    # The first request runs longer than the rest, so the last warm-up steps decode a batch of one,
    # the size torch.compile specialises, as a timed run's last steps do.
    max_tokens = [12] + [8] * (len(lengths) - 1)
    return [
        Request(
            [1 + t % spec.token_id_max for t in range(n)],
            SamplingParams(temperature=spec.temperature, max_tokens=m, ignore_eos=True),
        )
        for n, m in zip(lengths, max_tokens)
    ]


def prompt_length_range(spec: WorkloadSpec) -> tuple[int, int]:
    """The shortest and longest prompt the workload can send (a length mix's or a trace's own)."""
    if spec.kind == "trace":
        from allmos.bench.request_trace import trace_lines

        lengths = [line.prompt_len for line in trace_lines(spec)]
        return min(lengths), max(lengths)
    if spec.length_mix:
        return min(c["input_len_min"] for c in spec.length_mix), max(c["input_len_max"] for c in spec.length_mix)
    return spec.input_len_min, spec.input_len_max
