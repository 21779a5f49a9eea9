"""What `python run.py` does with a composed config, per mode."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from allmos.bench.record import (
    StorageError,
    exit_description,
    failure,
    interrupted,
    move_aside_previous,
    read_record,
    strict_json,
    write_atomic,
    write_record,
)
from allmos.bench.worker import PARENT_ENV, SPEC_NAME, describe_failure
from allmos.cli.interrupt import Interrupted, die_by, ignore_stop_signals, interruptible, stop_worker
from allmos.cli.job_folder import FolderInUse, device_turn, owned_folder
from allmos.cli.job_spec import job_spec, task_overrides
from allmos.cli.schema import check_known_keys
from allmos.cli.summary import summary_lines
from allmos.errors import ConfigError, RequestError
from allmos.validation import validate

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_job(cfg: DictConfig) -> dict | None:
    """Run the composed config; a user error ends it with one line naming the key and status 1."""
    try:
        check_known_keys(cfg)
        return run_mode(cfg)
    except (ConfigError, RequestError) as error:
        print(f"allmos: {error}", file=sys.stderr)
        sys.exit(1)


def run_mode(cfg: DictConfig) -> dict | None:
    if cfg.mode == "doctor":
        from allmos.cli.doctor import doctor

        return doctor()
    if cfg.mode == "generate":
        from allmos.cli.generate import generate

        return generate(cfg)
    if cfg.mode != "bench":
        raise ConfigError("mode", f"{cfg.mode!r} is unknown; use bench, doctor or generate")
    return bench(cfg)


LAUNCHERS_STARTING_ALL_JOBS = ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",)


def current_job() -> tuple[str, dict, bool]:
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    job = {
        "num": hc.job.num if multirun else 0,
        "override_dirname": hc.job.override_dirname,
        "dir": hc.runtime.output_dir,
        "run_id": uuid.uuid4().hex,  # the parent accepts only a record carrying its own run's id
    }
    return hc.runtime.output_dir, job, multirun


def bench(cfg: DictConfig) -> dict:
    with interruptible():
        try:
            folder, job, multirun = current_job()
            spec = job_spec(cfg, job, task_overrides())
            with owned_folder(folder):
                record = resumed(cfg, spec, folder) or run_recorded(cfg, spec, folder, multirun)
        except (FolderInUse, StorageError) as error:
            print(f"error: {error}", file=sys.stderr)
            if not multirun:
                sys.exit(1)
            return {"status": "failed", "metrics": None}
        except Interrupted as stop:  # the folder's lock is released by now
            if not stop.recorded:
                print(f"allmos: interrupted by {signal.Signals(stop.signum).name}", file=sys.stderr)
            die_by(stop.signum)
    for line in summary_lines(record):
        print(line)
    if record.get("status") != "ok" and not multirun:
        sys.exit(1)
    return {"status": record.get("status"), "metrics": record.get("metrics")}


def resumed(cfg: DictConfig, spec, folder: str) -> dict | None:
    previous = read_record(folder)
    if not cfg.resume or previous is None or previous.get("status") != "ok":
        return None
    if same_job(previous, spec):
        print(f"resume: {folder} already has a good record; skipped")
        return previous
    print(f"resume: {folder} holds a record of another configuration (the sweep changed?); running again")
    return None


def run_recorded(cfg: DictConfig, spec, folder: str, multirun: bool) -> dict:
    """Run the job; on SIGINT or SIGTERM stop it and record it as interrupted (the caller ends)."""
    try:
        with device_turn(os.path.dirname(folder), multirun and launcher_starts_all_jobs()):
            move_aside_previous(folder)
            return run_isolated(spec, folder) if cfg.isolate else run_here(spec, folder)
    except Interrupted as stop:
        ignore_stop_signals()
        write_record(folder, describe_failure(spec) | interrupted(stop.signum))
        what = f"the sweep stopped at job {spec.job.get('num')}" if multirun else "the job stopped"
        print(
            f"allmos: interrupted by {signal.Signals(stop.signum).name}: {what}; "
            f"its record says so: {os.path.join(folder, 'result.json')}",
            file=sys.stderr,
        )
        stop.recorded = True
        raise


def launcher_starts_all_jobs() -> bool:
    return HydraConfig.get().launcher.get("_target_") in LAUNCHERS_STARTING_ALL_JOBS


RESUME_IGNORED_KEYS = ("resume", "isolate")  # how a job is run, not what it measures


def same_job(record: dict, spec) -> bool:
    """Whether `record` was written for the configuration `spec` describes (Hydra numbers jobs by
    position in the grid, so a changed sweep puts other configurations into existing folders)."""

    def plain(config) -> dict:
        config = json.loads(json.dumps(strict_json(config or {}), default=str))  # as the record holds it
        return {k: v for k, v in config.items() if k not in RESUME_IGNORED_KEYS}

    return plain(record.get("config")) == plain(spec.config)


def written_by_this_run(record: dict, spec) -> bool:
    return record.get("job", {}).get("run_id") == spec.job.get("run_id") and same_job(record, spec)


def run_here(spec, folder: str) -> dict:
    from allmos.bench.job import run_benchmark

    try:
        validate(spec.engine_config())
        return run_benchmark(spec, folder)
    except Exception as error:  # noqa: BLE001 - recorded, then reported by the caller
        record = describe_failure(spec) | failure(error)
        write_record(folder, record)
        return record


def run_isolated(spec, folder: str) -> dict:
    """Run the job in a fresh Python process; whatever happens there, a record of this job comes back."""
    try:
        validate(spec.engine_config())  # refuse before paying for a process and the weights
    except Exception as error:  # noqa: BLE001
        record = describe_failure(spec) | failure(error)
        write_record(folder, record)
        return record
    write_atomic(os.path.join(folder, SPEC_NAME), json.dumps(spec.__dict__, default=str))
    path = os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path, **{PARENT_ENV: str(os.getpid())})
    # Its own session: a terminal's Ctrl-C reaches only this process, which stops the worker.
    proc = subprocess.Popen([sys.executable, "-m", "allmos.bench.worker", folder], env=env, start_new_session=True)
    try:
        returncode = proc.wait()
    finally:
        stop_worker(proc)
    record = read_record(folder)
    if record is not None and written_by_this_run(record, spec):
        return record
    missing = "wrote no record" if record is None else "left a record that is not this job's"
    error = RuntimeError(f"the job process {exit_description(returncode)} and {missing}")
    record = describe_failure(spec) | failure(error)
    write_record(folder, record)
    return record
