"""The `serving` workload's requests: random tokens with lengths uniform in the workload's ranges, or
in the ranges of a `length_mix` of request classes (e.g. many short chat turns and a few long
prompts, the mix where prefill stalls decode), each class holding its exact share of the requests.
"""

from __future__ import annotations

import numpy as np

from allmos.bench.workloads import Request, WorkloadSpec, sampling

LENGTH_KEYS = ("input_len_min", "input_len_max", "output_len_min", "output_len_max")


def request_classes(spec: WorkloadSpec) -> list[dict]:
    """The classes to draw from: the length_mix, or one class of the workload's own length keys."""
    if spec.length_mix:
        return [dict(c) for c in spec.length_mix]
    return [{"share": 1.0, **{key: getattr(spec, key) for key in LENGTH_KEYS}}]


def class_counts(shares: list[float], n: int) -> list[int]:
    """Requests per class: each share of n, rounded so the counts add up to n (largest remainders)."""
    exact = [share * n for share in shares]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def serving_requests(spec: WorkloadSpec, rng: np.random.Generator) -> list[Request]:
    classes = request_classes(spec)
    counts = class_counts([c["share"] for c in classes], spec.num_requests)
    labels = rng.permutation(np.repeat(np.arange(len(classes)), counts))
    requests = []
    for label in labels.tolist():
        c = classes[label]
        prompt_len = int(rng.integers(c["input_len_min"], c["input_len_max"] + 1))
        output_len = int(rng.integers(c["output_len_min"], c["output_len_max"] + 1))
        tokens = rng.integers(0, spec.token_id_max + 1, size=prompt_len).tolist()
        requests.append(Request(tokens, sampling(spec, output_len), priority=c.get("priority")))
    return requests
