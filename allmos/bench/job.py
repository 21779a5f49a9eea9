"""One benchmark job: build the engine, warm it up, time the workload, describe it in a record."""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from allmos.bench import metrics
from allmos.bench.bandwidth import copy_bandwidth
from allmos.bench.driver import Served, serve
from allmos.bench.energy import energy_meter
from allmos.bench.environment import device_name, environment
from allmos.bench.latency import latency_metrics, request_rows
from allmos.bench.probe import check_probe, ensure_reference
from allmos.bench.record import write_record, write_requests, write_trace
from allmos.bench.request_trace import trace_digest
from allmos.bench.slo import Slo
from allmos.bench.workloads import Request, WorkloadSpec, make_requests, warmup_requests
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
    slo: dict = field(default_factory=dict)  # the checked `slo:` block (allmos.bench.slo.Slo's keys)

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
    llm.check([r.token_ids for r in requests], [r.params for r in requests])  # refused by index before warm-up
    warm = warmup_requests(workload)
    if warm:
        with phase(f"warm-up ({len(warm)} requests, not timed)"):
            llm.run_requests([r.token_ids for r in warm], [r.params for r in warm])
    engine.reset_stats()
    sync(config)
    meter = energy_meter(config.resolved_device, config.tensor_parallel_size)
    meter.start()
    start = time.perf_counter()
    served = run_workload(llm, requests, workload, start)
    sync(config)
    wall = time.perf_counter() - start
    energy = meter.stop(sum(s.seq.num_output_tokens for s in served), wall)  # before anything else runs on the GPU
    LOG.info("workload %s: %d requests in %.2f s", workload.name, len(served), wall)
    slo = Slo(**spec.slo)
    record = describe(spec, config) | {
        "status": "ok",
        "error": None,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),  # when the timed run ended
        "env": environment(config.resolved_device),
        "workload_spec": workload_description(workload),
        "slo": asdict(slo),  # the objectives goodput_req_s was judged by (all null: not judged)
        "metrics": run_metrics(engine, served, slo, wall) | energy,
        "energy_source": meter.source,
        "counters": engine.counters(),
        "correctness": None,
    }
    trace = engine.stats.trace_rows()  # the workload's steps only: taken before the probe runs its own
    if reference is not None:
        with phase("correctness probe"):
            record["correctness"] = check_probe(llm, reference)
    record["trace_file"] = write_trace(folder, trace)
    record["requests_file"] = write_requests(folder, request_rows(served, start, slo))
    write_record(folder, record)
    return record


def run_workload(llm: LLM, requests: list[Request], workload: WorkloadSpec, start: float) -> list[Served]:
    """Requests arriving over time through the arrival-driven harness; an offline workload all at
    once, or (single-stream style) `concurrency` at a time, each wave to completion."""
    if workload.arrives_over_time:
        bar = make_request_bar(len(requests))
        try:
            return serve(llm.engine, requests, start, workload.max_concurrency, bar=bar)
        finally:
            bar.close()
    size = workload.concurrency or len(requests)
    served = []
    for first in range(0, len(requests), size):
        wave = requests[first : first + size]
        seqs = llm.run_requests([r.token_ids for r in wave], [r.params for r in wave], workload.concurrency is None)
        served += [Served(first + i, seq, seq.arrival, r.priority or 0) for i, (seq, r) in enumerate(zip(seqs, wave))]
    return served


def make_request_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="serve", unit="req", dynamic_ncols=True)


def workload_description(workload: WorkloadSpec) -> dict:
    """The workload's keys, and for a trace the digest of the file that ran."""
    described = asdict(workload)
    if workload.kind == "trace":
        described["trace_sha256"] = trace_digest(workload.trace)
    return described


def config_options(config: EngineConfig) -> dict:
    return {k: v for k, v in config.__dict__.items() if k != "model"}


def sync(config: EngineConfig) -> None:
    if config.resolved_device == "cuda":
        torch.cuda.synchronize()


def run_metrics(engine, served: list[Served], slo: Slo, wall: float) -> dict:
    runner = engine.runner
    seqs = [s.seq for s in served]
    weight_bytes, kv_per_token = metrics.read_sizes(runner)
    bandwidth = copy_bandwidth(runner.device) if runner.device.type == "cuda" else None
    out = metrics.throughput_metrics(seqs, engine.stats, wall) | latency_metrics(served, slo, wall)
    out["kv_usage_peak"] = engine.stats.peak_kv_blocks / runner.num_blocks
    return out | metrics.roofline(engine.stats, weight_bytes, kv_per_token, bandwidth)
