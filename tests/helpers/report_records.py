"""Synthetic result.json records for the report tests: an experiment's points with noisy trials."""

from __future__ import annotations

import json
from pathlib import Path

SMOKE_SWITCHES = {"attention": "sdpa", "kv_store": "torch", "cuda_graphs": False, "prefix_caching": False}


def write_job(folder: Path, num: int, switches: dict, metrics: dict | None, **fields) -> Path:
    """One job folder ``folder/<num>/result.json``; ``fields`` extend or override the record."""
    record = {
        "schema": 1, "status": "ok", "error": None, "switches": switches, "model": "qwen3-tiny",
        "workload": "smoke", "trial": 0, "device_name": "cpu", "dtype": "float32", "weights": "random",
        "job": {"num": num, "override_dirname": fields.pop("overrides", f"trial={fields.get('trial', 0)}")},
        "metrics": metrics, "counters": {"prefill_tokens_computed": 102}, "correctness": None, "trace_file": None,
    }  # fmt: skip
    record.update(fields)
    path = folder / str(num) / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def experiment_config(
    point: str | None, name: str, kind: str, baseline: str | None, compared_with: str | None = None
) -> dict:
    experiment = {"name": name, "kind": kind, "baseline": baseline, "compared_with": compared_with}
    return {"point": point, "experiment": experiment}


def write_points(
    folder: Path,
    points: dict[str, tuple[dict, list[float]]],
    kind: str = "leave_one_out",
    baseline: str | None = None,
    metric: str = "output_tok_s",
    overrides: dict[str, str] | None = None,
    compared_with: dict[str, str] | None = None,
) -> Path:
    """One job per (point, trial value): ``points[name] = (switches, values)``; ``overrides[name]``
    is that point's override_dirname (the swept keys), default ``+group=<name>``; ``compared_with[name]``
    the other point that point's file states it is compared with."""
    num = 0
    for name, (switches, values) in points.items():
        for trial, value in enumerate(values):
            text = (overrides or {}).get(name, f"+group={name}") + f",trial={trial}"
            point = None if overrides else name
            config = experiment_config(point, "exp", kind, baseline, (compared_with or {}).get(name))
            write_job(folder, num, switches, {metric: value, "prefix_hit_rate": 0.0}, trial=trial,
                      overrides=text, config=config)  # fmt: skip
            num += 1
    return folder


# --------------------------------------------------------------------------- serving sweeps

SERVING_SLO = {"ttft_ms": 2000.0, "tpot_ms": 50.0, "e2e_ms": None}
SERVING_WORKLOAD = {"name": "serving", "kind": "serving", "num_requests": 200, "input_len_min": 64,
                    "input_len_max": 3072, "output_len_min": 128, "output_len_max": 512, "arrival": "poisson",
                    "burstiness": 1.0, "max_concurrency": None, "seed": 0, "priority": None,
                    "length_mix": [{"share": 0.75, "input_len_min": 64, "input_len_max": 512, "output_len_min": 128,
                                    "output_len_max": 512},
                                   {"share": 0.25, "input_len_min": 2048, "input_len_max": 3072,
                                    "output_len_min": 128, "output_len_max": 512}]}  # fmt: skip
LATENCY_SCALE = {"mean": 1.1, "p50": 1.0, "p90": 1.8, "p99": 2.6}  # each percentile as a multiple of p50


def serving_metrics(rate: float, capacity: float, trial: int = 0, attainment: float | None = None) -> dict:
    """Plausible serving metrics of one job at ``rate`` req/s for an engine that saturates at ``capacity``:
    queueing blows TTFT up towards saturation, TPOT and ITL grow with the batch. ``attainment`` (the
    share of requests within the SLOs) defaults to falling off from 70% of capacity; trials differ by 2%."""
    load = min(rate / capacity, 0.99)
    wobble = 1.0 + 0.02 * (trial - 1)
    p50 = {"ttft": (90.0 + 400.0 * load / (1.0 - load)) * wobble, "tpot": (8.0 + 20.0 * load) * wobble}
    p50 |= {"itl": p50["tpot"] * 0.95, "e2e": p50["ttft"] + 288 * p50["tpot"]}
    metrics = {f"{name}_ms_{stat}": v * LATENCY_SCALE[stat] for name, v in p50.items() for stat in LATENCY_SCALE}
    served = min(rate, capacity) * 0.97 * wobble
    share = attainment if attainment is not None else max(0.0, min(1.0, 1.0 - 2.5 * (load - 0.7)))
    return metrics | {"request_s": served, "goodput_req_s": served * share, "output_tok_s": served * 288,
                      "total_tok_s": served * 2336, "wall_s": 200 / served}  # fmt: skip


def write_serving_sweep(
    folder: Path,
    configs: dict[str, tuple[dict, object]],
    rates: list[float],
    trials: int = 3,
    baseline: str | None = None,
    slo: dict | None = SERVING_SLO,
    kind: str | None = "serving",
    points: bool = True,
) -> Path:
    """One job per (configuration, rate, trial), in Hydra's order. ``configs[name] = (switches, metrics)``
    where ``metrics(rate, trial)`` returns the job's metrics dict, or None for a failed job."""
    num = 0
    for name, (switches, metrics_of) in configs.items():
        for rate in rates:
            for trial in range(trials):
                metrics = metrics_of(rate, trial)
                rate_text = "inf" if rate == float("inf") else f"{rate:g}"
                swept = f"+serving_config={name}," if points else ""
                config = experiment_config(name if points else None, "serving_rate_sweep", kind, baseline)
                config |= {"workload": SERVING_WORKLOAD | {"request_rate": rate}, "slo": slo}
                status = {} if metrics is not None else {"status": "failed", "error": "RuntimeError: out of memory"}
                write_job(folder, num, switches, metrics, trial=trial, workload="serving", config=config,
                          overrides=f"{swept}workload.request_rate={rate_text},trial={trial}", **status)  # fmt: skip
                num += 1
    return folder


def approximate_correctness(top1: float, top5: float, diff: float, passed: bool = True) -> dict:
    """The probe's record of an approximate configuration (allmos.bench.probe.check_approximate)."""
    return {
        "verdict": "pass" if passed else "fail", "passed": passed, "first_divergence": [3, None, None, None],
        "reasons": [] if passed else ["top-1 agreement below"], "reference": "ref.json",
        "approximate": ["kv_cache_dtype=fp8"], "top1_agreement": top1, "top1_agreement_after": top1,
        "agreed_prefix": 0.8, "top5_containment": top5, "mean_abs_logprob_diff": diff,
        "tolerances": {"top1_agreement_min": 0.85, "top5_containment_min": 0.95, "mean_abs_logprob_diff_max": 0.2},
    }  # fmt: skip
