"""A sweep's last word: every failed job echoed, one line counting the failures and their causes,
and a non-zero exit when any job failed (after all of them ran).

A Hydra callback, so it works the same for the basic launcher and for submitit (whose jobs print
into log files): it reads the records of the jobs this sweep ran, found by the job folders whose
`.hydra/config.yaml` (or, without it, job.json or result.json) was written after the sweep started.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from allmos.bench.record import RECORD_NAME, read_record


class SweepEnd(Callback):
    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.started = time.time() - 1.0  # file times can be a little coarse

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = str(config.hydra.sweep.dir)
        outcomes = job_outcomes(sweep_dir, self.started)
        failed = {folder: error for folder, error in outcomes.items() if error is not None}
        if not jobs_ran_here(config):  # their own lines went to log files: echo each failure
            for folder, error in failed.items():
                print(f"FAILED ({folder}): {error}", file=sys.stderr)
        print(sweep_line(sweep_dir, len(outcomes), failed), file=sys.stderr if failed else sys.stdout)
        if failed:
            sys.exit(1)


def jobs_ran_here(config: DictConfig) -> bool:
    """Whether the sweep's jobs ran in this process (the basic launcher), printing to this terminal."""
    return str(config.hydra.launcher.get("_target_", "")).endswith("basic_launcher.BasicLauncher")


def job_outcomes(sweep_dir: str, since: float) -> dict[str, str | None]:
    """Each job folder of this sweep and its error (None when its record says ok)."""
    outcomes = {}
    for folder in job_folders(sweep_dir, since):
        record = read_record(folder)
        if record is None:
            outcomes[folder] = f"no {RECORD_NAME} (the job ended before writing one)"
        elif record.get("status") != "ok":
            outcomes[folder] = record.get("error") or record.get("status")
        else:
            outcomes[folder] = None
    return outcomes


JOB_MARKERS = (os.path.join(".hydra", "config.yaml"), "job.json", RECORD_NAME)  # .hydra/ unless output_subdir=null


def job_folders(sweep_dir: str, since: float) -> list[str]:
    folders = []
    for root, dirs, _files in os.walk(sweep_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        markers = [os.path.join(root, m) for m in JOB_MARKERS if os.path.exists(os.path.join(root, m))]
        if markers and os.path.getmtime(markers[0]) >= since:
            folders.append(root)
    return sorted(folders)


def sweep_line(sweep_dir: str, total: int, failed: dict[str, str]) -> str:
    if not failed:
        return f"sweep: all {total} jobs ok; records under {sweep_dir}"
    causes = Counter(short(error) for error in failed.values())
    listed = "; ".join(f"{n} x {cause}" for cause, n in causes.most_common())
    return f"sweep: {len(failed)} of {total} jobs failed ({listed}); records under {sweep_dir}"


def short(error: str, limit: int = 160) -> str:
    line = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."
