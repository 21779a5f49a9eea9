"""Workloads: the requests a benchmark run sends, drawn reproducibly from a seed.

`random_tokens` draws exactly as nano-vLLM's bench.py does (Python's `random`, seed 0: every
prompt's length and tokens first, then every output length), so the figures compare directly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

from allmos.errors import ConfigError
from allmos.sampling_params import SamplingParams

KINDS = ("random_tokens", "shared_prefix", "latency")


@dataclass
class WorkloadSpec:
    name: str = "smoke"
    kind: str = "random_tokens"  # random_tokens | shared_prefix | latency
    num_requests: int = 4
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


def checked_workload(values: dict) -> dict:
    """The workload's keys, each checked (before weights load), naming `workload.<key>` when wrong."""
    spec = WorkloadSpec(**values)
    at_least = {"num_requests": 1, "input_len_min": 1, "output_len_min": 1, "token_id_max": 0}
    at_least |= {"warmup_requests": 0, "prefix_len": 0}
    for key, low in at_least.items():
        if not isinstance(getattr(spec, key), int) or getattr(spec, key) < low:
            raise ConfigError(f"workload.{key}", f"must be an integer of at least {low}, got {getattr(spec, key)!r}")
    for low, high in (("input_len_min", "input_len_max"), ("output_len_min", "output_len_max")):
        if getattr(spec, high) < getattr(spec, low):
            raise ConfigError(f"workload.{high}", f"{getattr(spec, high)} is below {low}={getattr(spec, low)}")
    if spec.kind not in KINDS:
        raise ConfigError("workload.kind", f"{spec.kind!r} is unknown; known: {', '.join(KINDS)}")
    if not 0.0 <= spec.prefix_share <= 1.0:
        raise ConfigError("workload.prefix_share", f"must be in [0, 1], got {spec.prefix_share}")
    if not spec.temperature >= 0.0 or spec.temperature == float("inf"):
        raise ConfigError("workload.temperature", f"must be finite and at least 0, got {spec.temperature}")
    if spec.concurrency is not None and spec.concurrency < 1:
        raise ConfigError("workload.concurrency", f"must be at least 1 or null, got {spec.concurrency}")
    return values


@dataclass(frozen=True)
class Request:
    token_ids: list[int]
    params: SamplingParams


def make_requests(spec: WorkloadSpec, vocab_size: int) -> list[Request]:
    if spec.kind not in KINDS:
        raise ConfigError("workload.kind", f"{spec.kind!r} is unknown; known: {', '.join(KINDS)}")
    if spec.token_id_max >= vocab_size:
        raise ConfigError(
            "workload.token_id_max", f"token ids up to {spec.token_id_max} exceed the vocabulary ({vocab_size})"
        )
    return shared_prefix_requests(spec) if spec.kind == "shared_prefix" else random_token_requests(spec)


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
    lengths = [spec.input_len_min, spec.input_len_max] + [16 + 8 * i for i in range(2, spec.warmup_requests)]
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
