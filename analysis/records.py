"""Load benchmark records (``result.json``) into a DataFrame and name their configurations.

One row per job. Column conventions:

* ``switch.<name>``   one column per switch found in *any* record (union; NA where a record lacks it)
* ``model``, ``workload``, ``trial``, ``status``, ``error``, ``device_name``, ``dtype``, ``weights``
* ``point``, ``experiment``, ``experiment_kind``, ``experiment_baseline``, ``compared_with`` (the harness
  keys ``point`` and ``experiment.{name,kind,baseline,compared_with}`` of the record's ``config``; NA where
  absent; ``compared_with`` is set by a point's own file: the point it is also compared with)
* ``job_num``, ``override_dirname``, ``result_dir`` (the job folder), ``trace_path`` (absolute, or NA)
* ``<metric>``        one column per entry of ``metrics`` (``metric.<metric>`` if the name is taken above)
* ``counter.<name>``  one column per entry of ``counters``
* ``workload.<key>``  one column per key of the record's ``config.workload`` (``workload.request_rate``; a
                      list such as ``workload.length_mix`` as compact JSON text)
* ``slo.<key>``       the service-level objectives the job judged its requests by (``config.slo``, else
                      ``metrics.slo``): ``slo.ttft_ms``, ``slo.tpot_ms``, ``slo.e2e_ms`` (null: not judged)
* ``correct``         ``correctness.passed`` as pandas ``boolean`` (NA when the job ran no check or was the reference)
* ``probe``           ``correctness.verdict``: ``pass``, ``fail``, ``reference`` (the job ran the reference's own
                      configuration, so nothing was compared), or NA
* ``probe.<figure>``  an approximate configuration's probe figures (``correctness.top1_agreement``,
                      ``top5_containment``, ``mean_abs_logprob_diff``); NA for exact ones
* ``config``          added by :func:`add_config_labels`: the point name, else e.g.
  ``"attention=sdpa cuda_graphs=false"``

Rows are in job order: by sweep folder, then Hydra job number.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULT_FILE = "result.json"
SCHEMA_VERSION = 1
SWITCH_PREFIX = "switch."
COUNTER_PREFIX = "counter."
PROBE_PREFIX = "probe."
PROBE_FIGURES = ("top1_agreement", "top5_containment", "mean_abs_logprob_diff")
METRIC_PREFIX = "metric."
WORKLOAD_PREFIX = "workload."
SLO_PREFIX = "slo."
CONTEXT_COLUMNS = ("model", "workload", "trial", "status", "error", "device_name", "dtype", "weights")
SHARED_EXPERIMENT_COLUMNS = ("experiment", "experiment_kind", "experiment_baseline")  # the same in every job
EXPERIMENT_COLUMNS = ("point", *SHARED_EXPERIMENT_COLUMNS, "compared_with")
JOB_COLUMNS = ("job_num", "override_dirname", "result_dir", "trace_path")
CONFIG_CONTEXT_COLUMNS = ("model", "workload", "device_name", "dtype", "weights")
OVERRIDE_CONTEXT_KEYS = ("model", "workload", "trial")
RESERVED_COLUMNS = frozenset(CONTEXT_COLUMNS + EXPERIMENT_COLUMNS + JOB_COLUMNS + ("correct", "probe", "config"))
NO_CONFIG_LABEL = "default"


# --------------------------------------------------------------------------- loading


def load_records(folder: str | Path, include_missing: bool = True) -> pd.DataFrame:
    """All ``result.json`` under ``folder`` (recursively) as one DataFrame, one row per job.

    With ``include_missing``, Hydra job folders (``.hydra/overrides.yaml``) that hold no
    ``result.json`` become failed rows too, so crashed jobs are never silently dropped.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"sweep folder not found: {root}")
    jobs = [(read_record(path), path.parent) for path in sorted(root.rglob(RESULT_FILE))]
    if not jobs:
        raise FileNotFoundError(f"no {RESULT_FILE} found under {root}")
    if include_missing:
        jobs += [(missing_result_record(job_dir), job_dir) for job_dir in jobs_without_result(root)]
    known_switches = switch_names(record for record, _ in jobs)
    rows = [record_to_row(fill_from_overrides(record, known_switches), job_dir) for record, job_dir in jobs]
    return tidy_frame(fill_points(pd.DataFrame(rows)))


def read_record(path: Path) -> dict[str, Any]:
    """The parsed record; an unreadable file becomes a failed record instead of an exception."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return failed_record(f"{type(exc).__name__}: unreadable {path}: {exc}")
    if not isinstance(record, dict):
        return failed_record(f"ValueError: {path} does not hold a JSON object")
    if record.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        warnings.warn(f"{path}: schema {record.get('schema')!r}, expected {SCHEMA_VERSION}", stacklevel=2)
    return record


def failed_record(error: str, job: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "status": "failed", "error": error, "job": dict(job or {})}


def jobs_without_result(root: Path) -> list[Path]:
    """Hydra job folders under ``root`` that never wrote a ``result.json``."""
    job_dirs = (overrides.parent.parent for overrides in root.rglob(".hydra/overrides.yaml"))
    return sorted(job_dir for job_dir in job_dirs if not (job_dir / RESULT_FILE).exists())


def missing_result_record(job_dir: Path) -> dict[str, Any]:
    overrides = read_hydra_overrides(job_dir / ".hydra" / "overrides.yaml")
    job = {"num": int(job_dir.name) if job_dir.name.isdigit() else None, "override_dirname": overrides}
    return failed_record(f"MissingResult: no {RESULT_FILE} in {job_dir} (job crashed or still running)", job)


def read_hydra_overrides(path: Path) -> str:
    """Hydra's ``overrides.yaml`` (a YAML list of ``key=value``) as an ``override_dirname`` string."""
    items = [line.strip()[2:].strip().strip("'\"") for line in path.read_text().splitlines()]
    return ",".join(item for item in items if item)


def switch_names(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Union of the switch names of all records, in order of first appearance."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record.get("switches") or {}))
    return list(names)


def fill_from_overrides(record: dict[str, Any], known_switches: Sequence[str]) -> dict[str, Any]:
    """A record lacking switches/model/workload/trial gets them from its Hydra ``override_dirname``.

    Only override keys that are known switch names become switches (all keys when none is known).
    """
    if record.get("switches") and all(record.get(key) is not None for key in OVERRIDE_CONTEXT_KEYS):
        return record
    overrides = parse_overrides((record.get("job") or {}).get("override_dirname") or "")
    filled = dict(record)
    for key in OVERRIDE_CONTEXT_KEYS:
        if filled.get(key) is None and key in overrides:
            filled[key] = overrides[key]
    if not filled.get("switches"):
        wanted = set(known_switches) or set(overrides) - set(OVERRIDE_CONTEXT_KEYS)
        named = ((switch_key(key, wanted), value) for key, value in overrides.items())
        filled["switches"] = {name: value for name, value in named if name is not None}
    return filled


def record_to_row(record: Mapping[str, Any], job_dir: Path) -> dict[str, Any]:
    """Flatten one record into a DataFrame row following the module's column conventions."""
    job = record.get("job") or {}
    row = {name: record.get(name) for name in CONTEXT_COLUMNS}
    row["status"] = record.get("status") or ("failed" if record.get("error") else "unknown")
    row["job_num"] = job.get("num")
    row["override_dirname"] = job.get("override_dirname")
    row["result_dir"] = str(job_dir)
    row["trace_path"] = trace_path(record, job_dir)
    row.update(prefixed(SWITCH_PREFIX, record.get("switches") or {}))
    row.update(metric_cells(record.get("metrics") or {}))
    row.update(prefixed(COUNTER_PREFIX, record.get("counters") or {}))
    row["correct"] = (record.get("correctness") or {}).get("passed")
    row["probe"] = probe_verdict(record.get("correctness"))
    row.update(probe_figures(record.get("correctness")))
    row.update(experiment_cells(record.get("config") or {}))
    row.update(workload_cells(record.get("config") or {}))
    return row


def probe_verdict(correctness: Mapping[str, Any] | None) -> str | None:
    """The probe's verdict; records older than the ``verdict`` field say it through ``passed``."""
    if not correctness:
        return None
    if correctness.get("verdict"):
        return str(correctness["verdict"])
    passed = correctness.get("passed")
    return None if passed is None else ("pass" if passed else "fail")


def probe_figures(correctness: Mapping[str, Any] | None) -> dict[str, Any]:
    """``probe.<figure>`` of an approximate configuration's probe; none for an exact one."""
    correctness = correctness or {}
    return {PROBE_PREFIX + name: correctness[name] for name in PROBE_FIGURES if name in correctness}


def experiment_cells(config: Mapping[str, Any]) -> dict[str, Any]:
    """The harness keys ``point`` and ``experiment`` of a record's resolved config."""
    experiment = config.get("experiment") or {}
    return {
        "point": config.get("point"),
        "experiment": experiment.get("name"),
        "experiment_kind": experiment.get("kind"),
        "experiment_baseline": experiment.get("baseline"),
        "compared_with": experiment.get("compared_with"),
    }


def workload_cells(config: Mapping[str, Any]) -> dict[str, Any]:
    """``workload.<key>`` for each key of the resolved workload (a list or mapping as compact JSON text, so
    every cell is a scalar), and ``slo.<key>`` from ``config.slo``
    (set here only where the config has it, so a record whose metrics state the SLO keeps theirs)."""
    workload = config.get("workload") or {}
    cells = {WORKLOAD_PREFIX + k: nested_as_text(v) for k, v in workload.items() if k != "name"}
    slo = config.get("slo")
    if isinstance(slo, Mapping):
        cells.update(prefixed(SLO_PREFIX, slo))
    return cells


def nested_as_text(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (Mapping, list, tuple)) else value


def override_pairs(override_dirname: object) -> dict[str, str]:
    """``"+leave_one_out=all_on,trial=0"`` -> ``{"+leave_one_out": "all_on", "trial": "0"}`` (raw text)."""
    items = str(override_dirname or "").split(",") if pd.notna(override_dirname) else []
    return dict(item.split("=", 1) for item in items if "=" in item)


def point_override_key(frame: pd.DataFrame) -> str | None:
    """The override key whose value is the point name in the records that have one (e.g.
    ``+leave_one_out``), so a job that crashed before writing its record still gets its point."""
    named = frame[frame["point"].notna()]
    keys = None
    for override, point in zip(named["override_dirname"], named["point"]):
        found = {key for key, value in override_pairs(override).items() if value == point}
        keys = found if keys is None else keys & found
    return sorted(keys)[0] if keys else None


def fill_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows without a point (records that never got written) take it from their overrides, and the
    experiment's name, kind and baseline from the other records."""
    for column in EXPERIMENT_COLUMNS:
        if column not in frame:
            frame[column] = None
    key = point_override_key(frame)
    for index in frame.index[frame["point"].isna()]:
        pairs = override_pairs(frame.at[index, "override_dirname"])
        frame.at[index, "point"] = pairs.get(key) if key else None
        for column in SHARED_EXPERIMENT_COLUMNS:
            known = frame[column].dropna()
            if pd.isna(frame.at[index, column]) and len(known):
                frame.at[index, column] = known.iloc[0]
    return frame


def prefixed(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}{name}": value for name, value in values.items()}


def metric_cells(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics keep their bare name, unless it clashes with a reserved column; a nested mapping
    (``metrics.slo``) becomes one column per key (``slo.ttft_ms``)."""
    cells: dict[str, Any] = {}
    for name, value in metrics.items():
        if isinstance(value, Mapping):
            cells.update(prefixed(f"{name}.", value))
        else:
            cells[METRIC_PREFIX + name if name in RESERVED_COLUMNS else name] = value
    return cells


def trace_path(record: Mapping[str, Any], job_dir: Path) -> str | None:
    """Absolute path of the record's trace file if it exists (or its gzip copy, as archived results keep
    it: pandas reads either), else None."""
    name = record.get("trace_file")
    if not name:
        return None
    found = [p for p in (job_dir / name, job_dir / f"{name}.gz") if p.is_file()]
    return str(found[0].resolve()) if found else None


def tidy_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed column order, nullable dtypes, and rows in job order."""
    for column in CONTEXT_COLUMNS + EXPERIMENT_COLUMNS + JOB_COLUMNS:
        if column not in frame:
            frame[column] = None
    switches = [c for c in frame.columns if c.startswith(SWITCH_PREFIX)]
    head = list(CONTEXT_COLUMNS + EXPERIMENT_COLUMNS + JOB_COLUMNS) + switches
    if "probe" not in frame:
        frame["probe"] = None
    tail = ["correct", "probe"]
    frame = frame[head + [c for c in frame.columns if c not in head + tail] + tail].copy()
    frame["correct"] = frame["correct"].astype("boolean")
    frame["trial"] = pd.to_numeric(frame["trial"], errors="coerce").astype("Int64")
    frame["job_num"] = pd.to_numeric(frame["job_num"], errors="coerce").astype("Int64")
    frame["_sweep"] = [str(Path(d).parent) for d in frame["result_dir"]]
    ordered = frame.sort_values(["_sweep", "job_num", "result_dir"], na_position="last", kind="stable")
    return ordered.drop(columns="_sweep").reset_index(drop=True)


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns that hold measurements (not switches, counters or bookkeeping)."""
    skipped = RESERVED_COLUMNS | {"job_num", "trial"}
    return [
        c
        for c in frame.columns
        if c not in skipped
        and not c.startswith((SWITCH_PREFIX, COUNTER_PREFIX, PROBE_PREFIX, WORKLOAD_PREFIX, SLO_PREFIX))
        and pd.to_numeric(frame[c], errors="coerce").notna().any()
    ]


# --------------------------------------------------------------------------- configurations


def format_value(value: Any) -> str:
    """Hydra-style text of a switch value: ``true``/``false``/``null``, ``256``, ``0.5``, ``sdpa``."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def short_name(column: str) -> str:
    """``switch.attention`` -> ``attention``; other columns keep their name."""
    return column.removeprefix(SWITCH_PREFIX)


def varies(column: pd.Series) -> bool:
    return column.map(format_value).nunique() > 1


def config_columns(frame: pd.DataFrame) -> list[str]:
    """Columns that tell configurations apart: model/workload/device/dtype/weights and switches that vary."""
    switches = [c for c in frame.columns if c.startswith(SWITCH_PREFIX)]
    candidates = [c for c in CONFIG_CONTEXT_COLUMNS if c in frame.columns] + switches
    return [c for c in candidates if varies(frame[c])]


def config_label(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """``"attention=sdpa cuda_graphs=false"`` from the given columns; ``"default"`` when there are none."""
    return " ".join(f"{short_name(c)}={format_value(row[c])}" for c in columns) or NO_CONFIG_LABEL


def add_config_labels(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Copy of ``frame`` with a ``config`` column: the experiment's point name where the record has one,
    else the values of ``columns`` (default: those that vary); ``names`` renames labels."""
    columns = config_columns(frame) if columns is None else list(columns)
    labelled = frame.copy()
    labels = [config_label(row, columns) for row in frame[columns].to_dict("records")]
    points = frame["point"] if "point" in frame else pd.Series(None, index=frame.index)
    labels = [label if pd.isna(point) else str(point) for label, point in zip(labels, points)]
    labelled["config"] = [(names or {}).get(label, label) for label in labels]
    return labelled


def config_order(frame: pd.DataFrame) -> list[str]:
    """Configuration labels in order of first appearance (job order)."""
    return list(dict.fromkeys(frame["config"]))


def config_values(frame: pd.DataFrame, label: str, columns: Sequence[str]) -> dict[str, str]:
    """``{short switch name: formatted value}`` of one configuration."""
    first = frame[frame["config"] == label].iloc[0]
    return {short_name(c): format_value(first[c]) for c in columns}


# --------------------------------------------------------------------------- overrides and baseline


def parse_override_value(text: str) -> Any:
    """``"true"`` -> True, ``"null"`` -> None, ``"256"`` -> 256, ``"0.5"`` -> 0.5, else the string."""
    text = text.strip().strip("'\"")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    for number_type in (int, float):
        try:
            return number_type(text)
        except ValueError:
            pass
    return text


def parse_overrides(text: str) -> dict[str, Any]:
    """``"attention=sdpa,+attention.longest_first=false"`` -> ``{"attention": "sdpa",
    "attention.longest_first": False}``. Hydra's ``+``/``++``/``~`` prefixes and a ``switch.``
    prefix are dropped; dotted keys stay whole (`switch_key` matches them to switches)."""
    pairs = (item.split("=", 1) for item in re.split(r",(?=[\w.+~/-]+=)", text) if "=" in item)
    return {key.strip().lstrip("+~").removeprefix(SWITCH_PREFIX): parse_override_value(value) for key, value in pairs}


def switch_key(key: str, switches: Iterable[str]) -> str | None:
    """The switch a (possibly dotted) override key names: the whole key (a plugin option such as
    ``attention.longest_first``), else its last component (``engine.cuda_graphs``), else None."""
    names = set(switches)
    return next((k for k in (key, key.split(".")[-1]) if k in names), None)
