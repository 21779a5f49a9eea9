"""SIGTERM and Ctrl-C end `python run.py` and its worker within a bounded time, with one line and
an interrupted record, never a traceback; a folder in use and a full disk are one line too."""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
from runtime_harness import LONG_WORKLOAD, ROOT, TINY, start_run, wait_for, worker_processes

BOUND_S = 20  # the parent gives its worker 5 s after SIGTERM, then SIGKILLs it


def finish(proc, timeout_s=BOUND_S):
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_run_and_its_worker_and_records_the_interruption(tmp_path, signum):
    proc = start_run(tmp_path, "probe=false", *LONG_WORKLOAD, start_new_session=True)
    wait_for(tmp_path / "run" / "job.json")
    time.sleep(0.5)
    os.killpg(proc.pid, signum)  # SIGINT to the process group is what a terminal's Ctrl-C sends
    start = time.monotonic()
    code, out, err = finish(proc)
    assert time.monotonic() - start < BOUND_S
    assert code == -signum, err[-2000:]  # died by the signal after cleaning up: a calling shell stops too
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    assert f"interrupted by {signal.Signals(signum).name}" in err
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["status"] == "interrupted" and record["error"] == f"interrupted by {signal.Signals(signum).name}"
    assert worker_processes(tmp_path / "run") == []
    assert not (tmp_path / "run" / ".allmos.lock").exists()


def test_ctrl_c_ends_a_sweep_with_one_line_leaving_an_interrupted_record(tmp_path):
    proc = start_run(tmp_path, "probe=false", "trial=0,1", *LONG_WORKLOAD, multirun=True, start_new_session=True)
    wait_for(tmp_path / "sweep" / "0" / "job.json")
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    code, out, err = finish(proc)
    assert code == -signal.SIGINT and "Traceback" not in out + err
    assert "the sweep stopped at job 0" in err
    assert json.loads((tmp_path / "sweep" / "0" / "result.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "sweep" / "1").exists()
    assert worker_processes(tmp_path / "sweep" / "0") == []


@pytest.mark.parametrize("multirun", [False, True])
def test_a_second_run_in_a_held_folder_is_refused_in_one_line(tmp_path, multirun):
    folder = tmp_path / ("sweep/0" if multirun else "run")
    holder = subprocess.Popen(["sleep", "60"])
    try:
        folder.mkdir(parents=True)
        (folder / ".allmos.lock").write_text(f"{holder.pid}\n")
        trials = "trial=0,1" if multirun else "trial=0"
        code, out, err = finish(start_run(tmp_path, "probe=false", trials, multirun=multirun), timeout_s=120)
    finally:
        holder.kill()
        holder.wait()
    assert code == 1 and "Traceback" not in out + err
    assert f"error: {folder} is in use by another run (pid {holder.pid})" in err
    assert os.listdir(folder) == [".allmos.lock"]  # not even Hydra's .hydra/ was written
    assert not (tmp_path / "sweep" / "1").exists()


def small_file_limit():
    """A file-size limit (EFBIG, like a full disk) that Hydra's own files and job.json fit in, a
    record does not."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))  # job.json ~3.9 KB, a CPU record ~7.4 KB


def test_a_failing_disk_is_one_line_naming_the_path_with_no_empty_files_left(tmp_path):
    code, out, err = finish(start_run(tmp_path, "probe=false", preexec_fn=small_file_limit), timeout_s=180)
    assert code == 1, err[-2000:]
    assert "Traceback" not in out + err
    assert f"cannot write {tmp_path}/run/result.json: File too large" in err
    record = json.loads((tmp_path / "run" / "result.json").read_text())  # the failure record is smaller
    assert record["status"] == "failed" and "File too large" in record["error"]
    leftovers = [
        f for f in os.listdir(tmp_path / "run") if f.startswith(".tmp-") or os.path.getsize(tmp_path / "run" / f) == 0
    ]
    assert leftovers in ([], ["run.log"]), leftovers


def test_a_worker_whose_run_was_killed_ends_too(tmp_path):
    proc = start_run(tmp_path, "probe=false", *LONG_WORKLOAD)
    wait_for(tmp_path / "run" / "job.json")
    deadline = time.monotonic() + 60
    while not worker_processes(tmp_path / "run"):
        assert time.monotonic() < deadline and proc.poll() is None, "no worker started"
        time.sleep(0.1)
    proc.kill()  # SIGKILL: the run cannot stop its worker itself
    proc.communicate(timeout=BOUND_S)
    deadline = time.monotonic() + 10
    while worker_processes(tmp_path / "run"):
        assert time.monotonic() < deadline, "the orphaned worker is still running"
        time.sleep(0.2)


def take_sigint() -> None:
    """The script's shell takes SIGINT as one run from a terminal does. Where pytest itself was started in the
    background of a non-interactive shell, SIGINT is ignored and a shell inherits that: it would never see the
    Ctrl-C and would go on to its next command whatever run.py does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_also_stops_the_calling_shell_script(tmp_path):
    """As in experiments/paper.sh: the script must not go on to its next sweep after a Ctrl-C."""
    run = " ".join([sys.executable, "run.py", *TINY, "probe=false", *LONG_WORKLOAD, f"hydra.run.dir={tmp_path}/run"])
    script = subprocess.Popen(
        ["bash", "-c", f"{run}; echo NEXT COMMAND"],
        cwd=ROOT,
        env=dict(os.environ, ALLMOS_CACHE=str(tmp_path / "cache")),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=take_sigint,
    )
    wait_for(tmp_path / "run" / "job.json")
    time.sleep(0.5)
    os.killpg(script.pid, signal.SIGINT)
    code, out, err = finish(script)
    assert "NEXT COMMAND" not in out and code == -signal.SIGINT, (code, err[-1000:])
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "interrupted"
