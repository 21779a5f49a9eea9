"""One benchmark job: build the engine, warm it up, time the workload, describe it in a record."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from allmos.bench import metrics
from allmos.bench.bandwidth import copy_bandwidth
from allmos.bench.environment import device_name, environment
from allmos.bench.probe import check_probe, ensure_reference
from allmos.bench.record import write_record, write_trace
from allmos.bench.workloads import WorkloadSpec, make_requests, warmup_requests
from allmos.config import EngineConfig
from allmos.engine.engine import weights_source
from allmos.llm import LLM
from allmos.progress import LOG, phase


@dataclass
class JobSpec:
    """Everything a job needs, as plain data so a fresh worker process can receive it as JSON."""

    engine: dict
    workload: dict
    model_name: str
    trial: int = 0
    job: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # the resolved Hydra config, for the record
    probe: bool = True  # check a greedy probe set against the all-off reference

    def engine_config(self) -> EngineConfig:
        options = dict(self.engine)
        return EngineConfig.create(options.pop("model", None), **options)


def describe(spec: JobSpec, config: EngineConfig) -> dict[str, Any]:
    return {
        "switches": config.switches(),
        "model": spec.model_name,
        "workload": spec.workload.get("name"),
        "trial": spec.trial,
        "dtype": str(config.torch_dtype).removeprefix("torch."),
        "device_name": device_name(config.resolved_device),
        "weights": weights_source(config),
        "job": spec.job,
        "config": spec.config,
    }


def run_benchmark(spec: JobSpec, folder: str) -> dict[str, Any]:
    config = spec.engine_config()
    workload = WorkloadSpec(**spec.workload)
    reference = None
    if spec.probe:
        with phase("probe reference (made once per model and weights, with everything off)"):
            reference = ensure_reference(config, weights_source(config))
    llm = LLM(**{"model": config.model, **config_options(config)})
    engine = llm.engine
    if engine.weights == "random":
        source = spec.config.get("model", {}).get("weights_from", f"{config.model!r} has no checkpoint")
        print(f"*** WEIGHTS ARE RANDOM: {source}; throughput is valid, text is not ***")
    requests = make_requests(workload, engine.hf_config.vocab_size)
    warm = warmup_requests(workload)
    if warm:
        with phase(f"warm-up ({len(warm)} requests, not timed)"):
            llm.run_requests([r.token_ids for r in warm], [r.params for r in warm])
    engine.reset_stats()
    sync(config)
    start = time.perf_counter()
    seqs = run_workload(llm, requests, workload.concurrency)
    sync(config)
    wall = time.perf_counter() - start
    LOG.info("workload %s: %d requests in %.2f s", workload.name, len(seqs), wall)
    record = describe(spec, config) | {
        "status": "ok",
        "error": None,
        "env": environment(config.resolved_device),
        "workload_spec": asdict(workload),
        "metrics": run_metrics(engine, seqs, start, wall),
        "counters": engine.counters(),
        "correctness": None,
    }
    trace = engine.stats.trace_rows()  # the workload's steps only: taken before the probe runs its own
    if reference is not None:
        with phase("correctness probe"):
            record["correctness"] = check_probe(llm, reference)
    record["trace_file"] = write_trace(folder, trace)
    write_record(folder, record)
    return record


def run_workload(llm: LLM, requests: list, concurrency: int | None) -> list:
    """All requests at once, or (single-stream style) `concurrency` at a time, each wave to completion."""
    size = concurrency or len(requests)
    seqs = []
    for start in range(0, len(requests), size):
        wave = requests[start : start + size]
        seqs += llm.run_requests([r.token_ids for r in wave], [r.params for r in wave], use_tqdm=concurrency is None)
    return seqs


def config_options(config: EngineConfig) -> dict:
    return {k: v for k, v in config.__dict__.items() if k != "model"}


def sync(config: EngineConfig) -> None:
    if config.resolved_device == "cuda":
        torch.cuda.synchronize()


def run_metrics(engine, seqs, start: float, wall: float) -> dict:
    runner = engine.runner
    weight_bytes = sum(p.numel() * p.element_size() for p in runner.model.parameters())
    kv_per_token = runner.cache_shape.block_bytes // runner.cache_shape.block_size
    bandwidth = copy_bandwidth(runner.device) if runner.device.type == "cuda" else None
    out = metrics.throughput_metrics(seqs, engine.stats, wall) | metrics.latency_metrics(seqs)
    out["kv_usage_peak"] = engine.stats.peak_kv_blocks / runner.num_blocks
    return out | metrics.roofline(engine.stats, weight_bytes, kv_per_token, bandwidth)
