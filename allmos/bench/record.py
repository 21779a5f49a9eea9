"""Result records: one JSON file per job, written atomically, plus the per-step trace as CSV."""

from __future__ import annotations

import csv
import json
import os
import tempfile
import traceback
from typing import Any

SCHEMA = 1
RECORD_NAME = "result.json"
TRACE_NAME = "trace.csv"


def write_atomic(path: str, text: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_record(folder: str, record: dict[str, Any]) -> str:
    path = os.path.join(folder, RECORD_NAME)
    write_atomic(path, json.dumps({"schema": SCHEMA, **record}, indent=2, default=str))
    return path


def read_record(folder: str) -> dict[str, Any] | None:
    path = os.path.join(folder, RECORD_NAME)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def write_trace(folder: str, rows: list[dict]) -> str | None:
    if not rows:
        return None
    path = os.path.join(folder, TRACE_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return TRACE_NAME


def failure(error: BaseException) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(error)),
    }
