"""Result records: one JSON file per job, written atomically, plus the per-step trace as CSV."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import signal
import tempfile
import traceback
from typing import Any

SCHEMA = 1
RECORD_NAME = "result.json"
TRACE_NAME = "trace.csv"
REQUESTS_NAME = "requests.csv"
STATUSES = ("ok", "failed", "interrupted")
# An earlier run's files in a job folder are renamed to these before a new run starts, so the
# folder never offers them as the new run's (analysis reads only files named result.json).
PREVIOUS_NAMES = {
    RECORD_NAME: "result.previous.json",
    TRACE_NAME: "trace.previous.csv",
    REQUESTS_NAME: "requests.previous.csv",
}


class StorageError(OSError):
    """A file allmos must write could not be written: one line naming the path and the cause."""

    def __init__(self, path: str, cause: OSError):
        super().__init__(cause.errno, f"cannot write {path}: {cause.strerror or cause}")
        self.path = path

    def __str__(self) -> str:
        return self.strerror


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str, text: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file,
    and a failed write (full disk, no permission) leaves no file behind. The file gets the mode
    a plain open() would give (mkstemp's 0600 ignores the umask)."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(text)
        os.replace(tmp, path)
    except OSError as error:
        remove_quietly(tmp)
        raise StorageError(path, error) from error
    except BaseException:
        remove_quietly(tmp)
        raise


def remove_quietly(path: str | None) -> None:
    if path is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)


def write_record(folder: str, record: dict[str, Any]) -> str:
    path = os.path.join(folder, RECORD_NAME)
    text = json.dumps(strict_json({"schema": SCHEMA, **record}), indent=2, default=str, allow_nan=False)
    write_atomic(path, text)
    return path


def strict_json(value: Any) -> Any:
    """The record with non-finite floats as the strings "inf", "-inf", "nan": JSON has no such numbers
    (Python's `Infinity` is refused by strict readers: jq, JavaScript, pandas' ujson)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def read_record(folder: str) -> dict[str, Any] | None:
    """The folder's record, or None when there is none or it is not a well-formed record of this
    schema (any valid JSON can sit in a file named result.json)."""
    path = os.path.join(folder, RECORD_NAME)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if well_formed(record) else None


def well_formed(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and record.get("schema") == SCHEMA
        and record.get("status") in STATUSES
        and isinstance(record.get("config"), dict)
        and isinstance(record.get("job"), dict)
    )


def move_aside_previous(folder: str) -> None:
    """Rename an earlier run's record and trace so that only this run's worker can produce them."""
    for name, previous in PREVIOUS_NAMES.items():
        path = os.path.join(folder, name)
        if os.path.lexists(path):
            try:
                os.replace(path, os.path.join(folder, previous))
            except OSError as error:
                raise StorageError(path, error) from error


def write_csv(folder: str, name: str, rows: list[dict]) -> str | None:
    """`rows` as CSV (a header of the first row's keys; None cells empty), written atomically; its name."""
    if not rows:
        return None
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(os.path.join(folder, name), text.getvalue())
    return name


def write_trace(folder: str, rows: list[dict]) -> str | None:
    return write_csv(folder, TRACE_NAME, rows)


def write_requests(folder: str, rows: list[dict]) -> str | None:
    return write_csv(folder, REQUESTS_NAME, rows)


def failure(error: BaseException) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(error)),
    }


def interrupted(signum: int) -> dict[str, Any]:
    name = signal.Signals(signum).name
    return {"status": "interrupted", "error": f"interrupted by {name}", "traceback": None}


def exit_description(returncode: int) -> str:
    """How a worker process ended, with the signal's name when a signal ended it."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"
