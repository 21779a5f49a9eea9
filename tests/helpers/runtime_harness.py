"""Helpers for the job-runtime tests: a composed config and its JobSpec, a `python run.py` process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from repo_paths import ROOT

TINY = ["model=qwen3-tiny", "workload=smoke", "device=cpu", "attention=sdpa", "kv_store=torch", "rope=torch"]
TINY += ["linear=torch", "sampler=gumbel", "cuda_graphs=false", "compile=false", "prefix_caching=false"]
TINY += ["async_scheduling=false"]
LONG_WORKLOAD = ["workload.num_requests=64", "workload.output_len_min=400", "workload.output_len_max=400"]


def composed(*overrides: str):
    from hydra import compose, initialize_config_dir

    from allmos.cli.schema import register_schemas

    register_schemas()
    os.environ.setdefault("ALLMOS_ROOT", ROOT)
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


def spec_of(*overrides: str, folder: str = "", run_id: str = "this-run"):
    from allmos.cli.job_spec import job_spec

    job = {"num": 0, "override_dirname": "", "dir": folder, "run_id": run_id}
    return job_spec(composed(*overrides), job)


def start_run(tmp_path, *overrides, multirun=False, **popen):
    args = [sys.executable, "run.py", *(["-m"] if multirun else []), *TINY, *overrides]
    args += [f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep"]
    env = dict(os.environ, ALLMOS_CACHE=str(tmp_path / "cache"))
    return subprocess.Popen(args, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def wait_for(path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout_s} s"
        time.sleep(0.1)


def worker_processes(folder) -> list[int]:
    """Pids of live job workers started for `folder` (read from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except OSError:
            continue
        if b"allmos.bench.worker" in cmdline and str(folder).encode() in cmdline:
            pids.append(int(entry))
    return pids
