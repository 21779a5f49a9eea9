"""Run one job in this (fresh) process: `python -m allmos.bench.worker <job folder>`.

The folder holds `job.json` (a JobSpec); the worker writes `result.json` there, a failure record
included when the job raises.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from allmos.bench.job import JobSpec, describe, run_benchmark
from allmos.bench.record import StorageError, failure, write_record
from allmos.progress import log_to_folder

SPEC_NAME = "job.json"
PARENT_POLL_S = 1.0
PARENT_ENV = "ALLMOS_WORKER_PARENT"  # the run's pid: it may die while this process still imports


def main(folder: str) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, exit_on_signal)  # unwinds (temporary files removed), no traceback
    watch_parent(int(os.environ.get(PARENT_ENV) or os.getppid()))
    with open(os.path.join(folder, SPEC_NAME)) as f:
        spec = JobSpec(**json.load(f))
    log_to_folder(folder)
    try:
        run_benchmark(spec, folder)
    except Exception as error:  # noqa: BLE001 - any failure becomes a record, then a non-zero exit
        print(f"job failed: {type(error).__name__}: {error}", file=sys.stderr)
        try:
            write_record(folder, describe_failure(spec) | failure(error))
        except StorageError as storage:
            print(f"job failed: {storage}", file=sys.stderr)
        return 1
    return 0


def exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def watch_parent(parent: int) -> None:
    """The parent stops this worker on SIGINT/SIGTERM; should the parent itself die (SIGKILL),
    the worker ends too rather than holding the device with no one to read its record."""

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="allmos-parent-watch").start()


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
