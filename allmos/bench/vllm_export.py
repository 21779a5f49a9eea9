"""A record in the JSON layout `vllm bench serve --save-result` writes, so an allmos run sits beside
a vLLM run in one table: `python -m allmos.bench.vllm_export result.json [-o out.json] [--detailed]`.

Every field with a counterpart is filled (names as in vllm/benchmarks/serve.py); requests.csv beside
the record gives the per-request lists. Differences to keep in mind: TTFT and E2EL count from each
request's scheduled arrival, so under max_concurrency they include the wait for a slot (vLLM counts
from when the request was sent, and reports that wait as queue_times, as this export does too);
per-token `itls` lists are not kept, so --detailed leaves them out.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import sys

from allmos.bench.latency import PERCENTILES
from allmos.bench.record import REQUESTS_NAME, write_atomic

# vLLM's metric names -> ours
METRICS = {"ttft": "ttft_ms", "tpot": "tpot_ms", "itl": "itl_ms", "e2el": "e2e_ms"}
TOTALS = {
    "duration": "wall_s",
    "completed": "num_requests",
    "total_input_tokens": "prompt_tokens",
    "total_output_tokens": "output_tokens",
    "request_throughput": "request_s",
    "request_goodput": "goodput_req_s",
    "output_throughput": "output_tok_s",
    "total_token_throughput": "total_tok_s",
    "max_output_tokens_per_s": "peak_output_tok_s",
    "max_concurrent_requests": "peak_concurrent_requests",
}


def as_vllm(record: dict, requests: list[dict] | None, detailed: bool = False) -> dict:
    m, w = record.get("metrics") or {}, record.get("workload_spec") or {}
    out = {
        "date": record_date(record),
        "endpoint_type": "allmos",
        "backend": "allmos",
        "label": (record.get("config") or {}).get("point"),
        "model_id": record.get("model"),
        "tokenizer_id": record.get("model"),
        "num_prompts": len(requests) if requests is not None else w.get("num_requests"),
        "request_rate": finite_or_text(w.get("request_rate", math.inf)),
        "burstiness": burstiness(w),
        "max_concurrency": w.get("max_concurrency"),
        "failed": 0,  # a request that fails fails the run: a record with status ok has none
    }
    out |= {theirs: m.get(ours) for theirs, ours in TOTALS.items()}
    for theirs, ours in METRICS.items():
        out[f"mean_{theirs}_ms"] = m.get(f"{ours}_mean")
        out[f"median_{theirs}_ms"] = m.get(f"{ours}_p50")
        out[f"std_{theirs}_ms"] = m.get(f"{ours}_std")
        out |= {f"p{p}_{theirs}_ms": m.get(f"{ours}_p{p}") for p in PERCENTILES}
    if requests is not None:
        out |= per_request(requests, detailed)
    out["allmos"] = {"switches": record.get("switches"), "slo": record.get("slo"), "workload": w.get("name")}
    return out


def per_request(rows: list[dict], detailed: bool) -> dict:
    def seconds(value: str) -> float | None:
        return float(value) if value not in ("", None) else None

    out = {
        "latencies": [ms / 1e3 if (ms := seconds(r["e2e_ms"])) is not None else None for r in rows],
        "queue_times": [seconds(r["admitted_s"]) - seconds(r["arrival_s"]) for r in rows],
    }
    if detailed:
        out["input_lens"] = [int(r["prompt_tokens"]) for r in rows]
        out["output_lens"] = [int(r["output_tokens"]) for r in rows]
        out["ttfts"] = [ms / 1e3 if (ms := seconds(r["ttft_ms"])) is not None else None for r in rows]
        out["start_times"] = [seconds(r["admitted_s"]) for r in rows]
        out["errors"] = [""] * len(rows)
    return out


def finite_or_text(value: float) -> float | str:
    """vLLM writes an infinite rate as the string "inf" (JSON has no infinity)."""
    return "inf" if math.isinf(value) else value


def burstiness(workload: dict) -> float | str:
    arrival = workload.get("arrival", "poisson")
    if arrival == "constant":
        return "inf"  # vLLM's burstiness inf is its constant-interval arrival
    return workload.get("burstiness", 1.0) if arrival == "gamma" else 1.0


def record_date(record: dict) -> str | None:
    """vLLM's date format (%Y%m%d-%H%M%S), from the record's `date`."""
    date = record.get("date")
    return datetime.datetime.fromisoformat(date).strftime("%Y%m%d-%H%M%S") if date else None


def read_requests(folder: str) -> list[dict] | None:
    path = os.path.join(folder, REQUESTS_NAME)
    if not os.path.isfile(path):
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="a result.json (requests.csv beside it is read too)")
    parser.add_argument("-o", "--output", help="write here (default: standard output)")
    parser.add_argument("--detailed", action="store_true", help="add the per-request lists (as --save-detailed)")
    args = parser.parse_args(argv)
    try:
        with open(args.record) as f:
            record = json.load(f)
    except (OSError, ValueError) as error:
        print(f"vllm_export: cannot read {args.record}: {error}", file=sys.stderr)
        return 1
    if record.get("status") != "ok":
        print(f"vllm_export: {args.record} is a {record.get('status')} record; only ok runs export", file=sys.stderr)
        return 1
    text = json.dumps(as_vllm(record, read_requests(os.path.dirname(os.path.abspath(args.record))), args.detailed))
    if args.output:
        write_atomic(args.output, text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
