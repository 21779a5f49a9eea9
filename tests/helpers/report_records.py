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


def experiment_config(point: str | None, name: str, kind: str, baseline: str | None) -> dict:
    return {"point": point, "experiment": {"name": name, "kind": kind, "baseline": baseline}}


def write_points(
    folder: Path,
    points: dict[str, tuple[dict, list[float]]],
    kind: str = "leave_one_out",
    baseline: str | None = None,
    metric: str = "output_tok_s",
    overrides: dict[str, str] | None = None,
) -> Path:
    """One job per (point, trial value): ``points[name] = (switches, values)``; ``overrides[name]``
    is that point's override_dirname (the swept keys), default ``+group=<name>``."""
    num = 0
    for name, (switches, values) in points.items():
        for trial, value in enumerate(values):
            text = (overrides or {}).get(name, f"+group={name}") + f",trial={trial}"
            point = None if overrides else name
            config = experiment_config(point, "exp", kind, baseline)
            write_job(folder, num, switches, {metric: value, "prefix_hit_rate": 0.0}, trial=trial,
                      overrides=text, config=config)  # fmt: skip
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
