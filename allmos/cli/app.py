"""What `python run.py` does with a composed config, per mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from allmos.bench.record import failure, read_record, write_record
from allmos.bench.worker import SPEC_NAME, describe_failure
from allmos.cli.job_spec import job_spec
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


def current_job() -> tuple[str, dict, bool]:
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    job = {
        "num": hc.job.num if multirun else 0,
        "override_dirname": hc.job.override_dirname,
        "dir": hc.runtime.output_dir,
    }
    return hc.runtime.output_dir, job, multirun


def bench(cfg: DictConfig) -> dict:
    folder, job, multirun = current_job()
    spec = job_spec(cfg, job)
    previous = read_record(folder)
    if cfg.resume and previous is not None and previous.get("status") == "ok":
        if same_job(previous, spec):
            print(f"resume: {folder} already has a good record; skipped")
            return previous
        print(f"resume: {folder} holds a record of another configuration (the sweep changed?); running again")
    record = run_isolated(spec, folder) if cfg.isolate else run_here(spec, folder)
    for line in summary_lines(record):
        print(line)
    if record.get("status") != "ok" and not multirun:
        sys.exit(1)
    return {"status": record.get("status"), "metrics": record.get("metrics")}


RESUME_IGNORED_KEYS = ("resume", "isolate")  # how a job is run, not what it measures


def same_job(record: dict, spec) -> bool:
    """Whether `record` was written for the configuration `spec` describes (Hydra numbers jobs by
    position in the grid, so a changed sweep puts other configurations into existing folders)."""

    def plain(config) -> dict:
        config = json.loads(json.dumps(config or {}, default=str))
        return {k: v for k, v in config.items() if k not in RESUME_IGNORED_KEYS}

    return plain(record.get("config")) == plain(spec.config)


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
    """Run the job in a fresh Python process; whatever happens there, a record comes back."""
    try:
        validate(spec.engine_config())  # refuse before paying for a process and the weights
    except Exception as error:  # noqa: BLE001
        record = describe_failure(spec) | failure(error)
        write_record(folder, record)
        return record
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, SPEC_NAME), "w") as f:
        json.dump(spec.__dict__, f, default=str)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "allmos.bench.worker", folder], env=env)
    record = read_record(folder)
    if record is None:
        record = describe_failure(spec) | failure(RuntimeError(f"the job process exited with code {proc.returncode}"))
        write_record(folder, record)
    return record
