"""A job owns its folder while it runs: a lock file holding the runner's pid.

A second run pointed at a folder whose lock names a live process is refused with one line;
a lock left by a process that no longer exists (killed with SIGKILL, machine reset) is taken over.
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
from contextlib import contextmanager, suppress

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from allmos.bench.record import StorageError

LOCK_NAME = ".allmos.lock"
PREFLIGHT_BYTES = 4096  # one block: on a full disk even this fails


class FolderInUse(RuntimeError):
    def __init__(self, folder: str, pid: int):
        super().__init__(
            f"{folder} is in use by another run (pid {pid}); wait for it, or give this run its own "
            "folder (hydra.run.dir=..., or hydra.sweep.dir=... for a sweep)"
        )


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def lock_holder(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def acquire(folder: str) -> str:
    path = os.path.join(folder, LOCK_NAME)
    for _ in range(3):
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_holder(path)
            if holder is not None and holder != os.getpid() and process_alive(holder):
                raise FolderInUse(folder, holder) from None
            os.unlink(path)  # stale: its process is gone
            continue
        except OSError as error:
            raise StorageError(path, error) from error
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as error:
            os.unlink(path)
            raise StorageError(path, error) from error
        return path
    raise FolderInUse(folder, lock_holder(path) or 0)


def release(path: str) -> None:
    if lock_holder(path) == os.getpid():
        with suppress(OSError):
            os.unlink(path)


class FolderGuard(Callback):
    """Refuses a run before Hydra writes its own files (.hydra/) into a folder that a live run
    holds; the job then takes the lock itself (`owned_folder`), which settles any race."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        refuse_if_unwritable(str(config.hydra.run.dir))
        refuse_if_held([str(config.hydra.run.dir)])

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep = str(config.hydra.sweep.dir)
        refuse_if_unwritable(sweep)
        jobs = [os.path.join(sweep, name) for name in sorted(os.listdir(sweep))] if os.path.isdir(sweep) else []
        refuse_if_held([folder for folder in jobs if os.path.isdir(folder)])


def refuse_if_unwritable(folder: str) -> None:
    """Hydra writes its own files (.hydra/) before any of ours runs and reports a failure there as a
    traceback: try a write of their size first, so a full disk or a read-only folder is one line."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(bytes(PREFLIGHT_BYTES))
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        print(f"error: {StorageError(os.path.abspath(folder), error)}", file=sys.stderr)
        raise SystemExit(1) from None


def refuse_if_held(folders: list[str]) -> None:
    for folder in folders:
        holder = lock_holder(os.path.join(folder, LOCK_NAME))
        if holder is not None and holder != os.getpid() and process_alive(holder):
            print(f"error: {FolderInUse(os.path.abspath(folder), holder)}", file=sys.stderr)
            raise SystemExit(1)


@contextmanager
def owned_folder(folder: str):
    """Hold `folder` for this process for the duration of the block."""
    path = acquire(folder)
    try:
        yield
    finally:
        release(path)


@contextmanager
def device_turn(sweep_dir: str, serialize: bool):
    """With a launcher that starts a sweep's jobs all at once on this machine (submitit_local),
    each job waits for its turn, so jobs sharing the device never disturb each other's timings.
    The lock is the kernel's (flock): it is released whenever its holder ends, even by SIGKILL."""
    if not serialize:
        yield
        return
    path = os.path.join(sweep_dir, ".allmos.device.lock")
    try:
        os.makedirs(sweep_dir, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as error:
        raise StorageError(path, error) from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("waiting for the device: another job of this sweep is running (jobs run one at a time)", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
