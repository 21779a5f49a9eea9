"""Run one job in this (fresh) process: `python -m allmos.bench.worker <job folder>`.

The folder holds `job.json` (a JobSpec); the worker writes `result.json` there, a failure record
included when the job raises.
"""

from __future__ import annotations

import json
import os
import sys

from allmos.bench.job import JobSpec, describe, run_benchmark
from allmos.bench.record import failure, write_record
from allmos.progress import log_to_folder

SPEC_NAME = "job.json"


def main(folder: str) -> int:
    with open(os.path.join(folder, SPEC_NAME)) as f:
        spec = JobSpec(**json.load(f))
    log_to_folder(folder)
    try:
        run_benchmark(spec, folder)
    except Exception as error:  # noqa: BLE001 - any failure becomes a record, then a non-zero exit
        write_record(folder, describe_failure(spec) | failure(error))
        print(f"job failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


def describe_failure(spec: JobSpec) -> dict:
    try:
        return describe(spec, spec.engine_config())
    except Exception:  # noqa: BLE001 - the config itself may be what failed
        return {
            "model": spec.model_name,
            "workload": spec.workload.get("name"),
            "trial": spec.trial,
            "job": spec.job,
            "config": spec.config,
            "switches": {},
        }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
