"""A job owns its folder: no record but its own worker's, no two runs in one folder, clean storage errors."""

import json
import os
import subprocess
import sys
import time

import pytest
from runtime_harness import ROOT, TINY, composed, spec_of

from allmos.bench import record as record_module
from allmos.bench.record import StorageError, read_record, write_atomic, write_record, write_trace
from allmos.cli import app
from allmos.cli.job_folder import FolderInUse, acquire, release

SIGKILL_ITSELF = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]


def old_ok_record(folder, spec):
    write_record(folder, {"status": "ok", "config": spec.config, "job": spec.job, "metrics": {"output_tok_s": 1.0}})


def test_a_killed_worker_never_passes_off_the_folders_old_record(tmp_path, monkeypatch):
    folder = str(tmp_path)
    old_ok_record(folder, spec_of("prefix_caching=false", folder=folder, run_id="earlier-run"))
    real_popen = subprocess.Popen
    monkeypatch.setattr(app.subprocess, "Popen", lambda args, **kw: real_popen(SIGKILL_ITSELF, **kw))
    spec = spec_of("prefix_caching=true", folder=folder)
    record = app.run_isolated(spec, folder)
    assert record["status"] == "failed"
    assert "killed by SIGKILL" in record["error"] and "code -9" not in record["error"]
    assert record["config"]["prefix_caching"] is True
    assert read_record(folder)["config"]["prefix_caching"] is True


def test_a_record_of_another_run_is_not_taken_as_this_jobs(tmp_path, monkeypatch):
    folder = str(tmp_path)
    spec = spec_of(folder=folder)
    intruder = spec_of(folder=folder, run_id="another-run")
    script = "from math import inf, nan; "  # the spec's repr holds the workload's infinite request_rate
    script += f"from allmos.bench.record import write_record; write_record({folder!r}, {intruder.__dict__!r} | "
    script += "{'status': 'ok', 'metrics': {}})"
    real_popen = subprocess.Popen
    monkeypatch.setattr(app.subprocess, "Popen", lambda args, **kw: real_popen([sys.executable, "-c", script], **kw))
    record = app.run_isolated(spec, folder)
    assert record["status"] == "failed" and "not this job's" in record["error"]
    assert record["job"]["run_id"] == "this-run"


def test_a_new_run_moves_the_previous_record_and_trace_aside(tmp_path):
    folder = str(tmp_path)
    old_ok_record(folder, spec_of(folder=folder, run_id="earlier-run"))
    write_trace(folder, [{"step": 0}])
    record_module.write_requests(folder, [{"request": 0}])
    record_module.move_aside_previous(folder)
    assert sorted(os.listdir(folder)) == ["requests.previous.csv", "result.previous.json", "trace.previous.csv"]


def test_a_folder_held_by_a_live_process_is_refused_naming_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / ".allmos.lock").write_text(f"{holder.pid}\n")
        with pytest.raises(FolderInUse, match=f"{tmp_path} is in use by another run \\(pid {holder.pid}\\)"):
            acquire(str(tmp_path))
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".allmos.lock").write_text(f"{dead.pid}\n")
    path = acquire(str(tmp_path))
    assert (tmp_path / ".allmos.lock").read_text().strip() == str(os.getpid())
    release(path)
    assert not os.path.exists(path)


def test_default_run_folders_differ_within_one_second():
    from datetime import datetime, timedelta

    hydra_dirs = [composed_dir(key) for key in ("run", "sweep")]
    first = datetime(2026, 12, 6, 3, 45, 1, 1000)
    second = first + timedelta(microseconds=1500)
    for pattern in hydra_dirs:
        assert expand_now(pattern, first) != expand_now(pattern, second), pattern


def composed_dir(key: str) -> str:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        full = compose("config", overrides=TINY, return_hydra_config=True)
    return OmegaConf.to_container(full.hydra, resolve=False)[key]["dir"]


def expand_now(pattern: str, when) -> str:
    import re

    return re.sub(r"\$\{now:([^}]*)\}", lambda m: when.strftime(m.group(1)), pattern)


@pytest.mark.parametrize("content", ["[1, 2]", "42", '"ok"', '{"status": "ok"}', '{"schema": 0, "status": "ok"}'])
def test_resume_treats_a_malformed_record_as_absent(tmp_path, content):
    (tmp_path / "result.json").write_text(content)
    assert read_record(str(tmp_path)) is None
    cfg = composed("resume=true")
    assert app.resumed(cfg, spec_of(folder=str(tmp_path)), str(tmp_path)) is None


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_records_and_traces_honour_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_record(str(tmp_path), {"status": "ok"})
        write_trace(str(tmp_path), [{"step": 0, "kind": "decode"}])
    finally:
        os.umask(previous)
    for name in ("result.json", "trace.csv"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask, name


def test_a_failed_write_names_the_path_and_leaves_no_file(tmp_path, monkeypatch):
    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(record_module.os, "replace", disk_full)
    path = str(tmp_path / "job.json")
    with pytest.raises(StorageError) as caught:
        write_atomic(path, json.dumps({"x": 1}))
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    assert os.listdir(tmp_path) == []


def test_stopping_a_worker_ends_the_processes_it_started(tmp_path):
    from allmos.cli.interrupt import stop_worker

    script = (
        "import subprocess, sys, time; p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True); time.sleep(60)"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True)
    rank = int(worker.stdout.readline())
    stop_worker(worker)
    assert worker.returncode == -15
    assert process_state_within(rank, ("Z", "gone"), seconds=5)  # a zombie awaits its reaper; it runs no more


def process_state_within(pid: int, states: tuple[str, ...], seconds: float) -> bool:
    """Whether the process reaches one of `states` ("gone": no such process) in time: a killed process
    shows R while the kernel tears it down, longer on a loaded machine."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().split()[2]
        except FileNotFoundError:
            state = "gone"
        if state in states or time.monotonic() > deadline:
            return state in states
        time.sleep(0.02)


@pytest.mark.parametrize("multirun", [False, True])
def test_a_folder_hydra_cannot_write_is_one_line_before_hydra_writes(tmp_path, multirun):
    """Hydra writes .hydra/ before any job code runs and would report a failure there as a traceback."""
    args = [sys.executable, "run.py", *(["-m"] if multirun else []), *TINY]
    args += [f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep"]
    limited = f"ulimit -f 2; exec {' '.join(args)}"  # files of at most 2 KiB: Hydra's hydra.yaml is larger
    proc = subprocess.run(["bash", "-c", limited], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert "error: cannot write" in proc.stderr.splitlines()[-1] and "File too large" in proc.stderr
