"""Workloads: the requests a benchmark run sends, drawn reproducibly from a seed.

`random_tokens` draws exactly as nano-vLLM's bench.py does (Python's `random`, seed 0: every
prompt's length and tokens first, then every output length), so the figures compare directly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

from allmos.sampling_params import SamplingParams


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


@dataclass(frozen=True)
class Request:
    token_ids: list[int]
    params: SamplingParams


def make_requests(spec: WorkloadSpec, vocab_size: int) -> list[Request]:
    makers = {
        "random_tokens": random_token_requests,
        "shared_prefix": shared_prefix_requests,
        "latency": random_token_requests,
    }
    if spec.kind not in makers:
        raise ValueError(f"workload kind {spec.kind!r} is unknown; known: {', '.join(makers)}")
    if spec.token_id_max >= vocab_size:
        raise ValueError(
            f"workload {spec.name}: token ids up to {spec.token_id_max} exceed the vocabulary ({vocab_size})"
        )
    return makers[spec.kind](spec)


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
