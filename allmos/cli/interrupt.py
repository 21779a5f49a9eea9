"""SIGINT (Ctrl-C) and SIGTERM end a run cleanly: the worker stops, a record says the job was
interrupted, and one line says so, never a traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
WORKER_GRACE_S = 5.0  # after SIGTERM, the worker gets this long before SIGKILL


class Interrupted(BaseException):
    """Raised in the main thread when SIGINT or SIGTERM arrives while a job runs (a BaseException,
    so no `except Exception` on the way swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.recorded = False  # set once the job's record says it was interrupted


def raise_interrupted(signum, frame):
    raise Interrupted(signum)


def exit_quietly(signum, frame):
    print(f"allmos: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
    die_by(signum)


def die_by(signum: int) -> None:
    """End the process by the signal itself (after the cleanup is done), so a calling shell script
    sees that it was interrupted and stops too, rather than going on to its next command."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # not reached where the signal's default action ends the process


def ignore_stop_signals() -> None:
    """While an interrupted job cleans up (bounded), a second Ctrl-C does not cut it short."""
    if in_main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def interruptible():
    """Within the block, SIGINT and SIGTERM raise Interrupted; after it (between a sweep's jobs,
    or while Hydra finishes), they end the process with one line."""
    if not in_main_thread():
        yield
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, raise_interrupted)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, exit_quietly)


def stop_worker(proc: subprocess.Popen) -> None:
    """End the worker and every process it started (tensor-parallel ranks: the worker leads its
    own session and process group) within a bounded time: SIGTERM, then SIGKILL after the grace."""
    if proc.poll() is None:
        signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(WORKER_GRACE_S)
    signal_group(proc.pid, signal.SIGKILL)  # whatever is left of the group (nothing when all ended)
    proc.wait()


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)
