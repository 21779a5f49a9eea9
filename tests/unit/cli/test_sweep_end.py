"""A sweep with failed jobs runs every job, echoes each failure, ends with one line counting them and
exits non-zero; under submitit_local a sweep's jobs take turns on the device."""

import importlib.util
import os
import threading
import time

import pytest
from runtime_harness import start_run

from allmos.bench.record import write_record
from allmos.cli.job_folder import device_turn
from allmos.cli.sweep_end import job_outcomes, sweep_line

REFUSED_POINTS = ["block_size=24,48"]  # neither is a power of two: refused before a worker starts


def finish(proc, timeout_s=300):
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out, err


def test_a_sweep_with_failed_jobs_exits_non_zero_after_every_job_naming_the_failures(tmp_path):
    code, out, err = finish(start_run(tmp_path, "probe=false", *REFUSED_POINTS, multirun=True))
    assert code == 1, err[-2000:]
    assert (tmp_path / "sweep" / "0" / "result.json").exists() and (tmp_path / "sweep" / "1" / "result.json").exists()
    last = err.strip().splitlines()[-1]
    assert last.startswith("sweep: 2 of 2 jobs failed (1 x ConfigError: block_size: must be a power of two, got 24;"), (
        last
    )
    assert f"FAILED ({tmp_path}/sweep/1): ConfigError: block_size" in out  # the job's own line, once
    assert (out + err).count(f"FAILED ({tmp_path}/sweep/1)") == 1 and "Traceback" not in out + err


def has_submitit() -> bool:
    try:  # find_spec of a submodule raises when its parent package (hydra_plugins) is absent
        return importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not has_submitit(), reason="no submitit")
def test_submitit_local_failures_reach_the_terminal_and_the_exit_code(tmp_path):
    args = ["hydra/launcher=submitit_local", "probe=false", *REFUSED_POINTS]
    code, out, err = finish(start_run(tmp_path, *args, multirun=True))
    assert code == 1, err[-2000:]
    assert f"FAILED ({tmp_path}/sweep/0): ConfigError: block_size" in err
    assert err.strip().splitlines()[-1].startswith("sweep: 2 of 2 jobs failed")


def fake_job(sweep, num, status, error=None):
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("{}")
    if status is not None:
        write_record(str(folder), {"status": status, "error": error, "config": {}, "job": {}})
    return str(folder)


def test_the_last_line_counts_failures_by_cause_and_missing_records(tmp_path):
    ok = fake_job(tmp_path, 0, "ok")
    killed = fake_job(tmp_path, 1, "failed", "RuntimeError: the job process was killed by SIGKILL and wrote no record")
    silent = fake_job(tmp_path, 2, None)
    outcomes = job_outcomes(str(tmp_path), since=time.time() - 60)
    assert outcomes[ok] is None and "SIGKILL" in outcomes[killed] and "no result.json" in outcomes[silent]
    failed = {k: v for k, v in outcomes.items() if v}
    assert sweep_line(str(tmp_path), 3, failed).startswith("sweep: 2 of 3 jobs failed (1 x RuntimeError")
    assert job_outcomes(str(tmp_path), since=time.time() + 60) == {}  # folders of an earlier sweep


def test_jobs_of_a_local_sweep_take_turns(tmp_path):
    order = []

    def job(name, hold_s):
        with device_turn(str(tmp_path), serialize=True):
            order.append(f"{name} start")
            time.sleep(hold_s)
            order.append(f"{name} end")

    first = threading.Thread(target=job, args=("a", 0.5))
    first.start()
    time.sleep(0.2)
    job("b", 0.0)
    first.join()
    assert order == ["a start", "a end", "b start", "b end"]
    assert os.path.exists(tmp_path / ".allmos.device.lock")
