"""Serving sweeps in numbers: latency percentiles and goodput per configuration and request rate, and
the highest rate each configuration sustains within its service-level objectives (SLOs).

A serving record holds ``workload.request_rate`` (requests/s; ``inf``: all at once), the latency
percentiles ``{ttft,tpot,itl,e2e}_ms_{mean,p50,p90,p99}``, ``request_s`` (completed requests/s),
``goodput_req_s`` (requests/s that met every SLO) and the SLOs themselves (``slo.ttft_ms``,
``slo.tpot_ms``, ``slo.e2e_ms``; null: not judged). Numbers stay numeric here;
:mod:`analysis.serving_report` writes them as text.

Two definitions of "sustained", both over the rates swept, both on the median over successful trials:

* **within SLO**: the share of requests that met every SLO (``goodput_req_s / request_s``) is at least
  the stated share (:data:`DEFAULT_SLO_SHARE`, ``--slo-share``) at this rate and at every lower one;
* **p99 within SLO**: the p99 of every judged latency is within its SLO at this rate and every lower one.

The sustained rate is the highest such swept rate: the true capacity lies between it and the next
rate swept (the first one missed, also reported).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis import stats
from analysis.records import SLO_PREFIX, WORKLOAD_PREFIX, config_order, override_pairs
from analysis.summary import status_summary

RATE = WORKLOAD_PREFIX + "request_rate"
ATTAINMENT = "slo_attainment"  # per job: the share of requests within every SLO (else goodput_req_s / request_s)
DEFAULT_SLO_SHARE = 0.9  # DistServe's "SLO attainment" convention: 90% of requests within every SLO
SLO_KEYS = ("ttft_ms", "tpot_ms", "e2e_ms")
LATENCIES = ("ttft", "tpot", "itl", "e2e")
STATISTICS = ("mean", "p50", "p90", "p99")
RATES = ("request_s", "output_tok_s", "total_tok_s", "goodput_req_s", ATTAINMENT)
POINT_METRICS = tuple(f"{name}_ms_{stat}" for name in LATENCIES for stat in STATISTICS) + RATES


def parse_rate(value: object) -> float:
    """A request rate as a float: ``8``, ``"8"``, ``inf``/``"inf"`` (all at once); NaN when unknown."""
    if value is None or value is pd.NA or (isinstance(value, str) and not value.strip()):
        return float("nan")
    try:
        return float(str(value).strip().strip("'\"")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return float("nan")


def request_rates(frame: pd.DataFrame) -> pd.Series:
    """Each job's offered rate: from its record, else (a job that never wrote one) its overrides."""
    recorded = frame[RATE] if RATE in frame else pd.Series(None, index=frame.index, dtype=object)
    from_overrides = [override_pairs(text).get(RATE) for text in frame["override_dirname"]]
    values = [parse_rate(r) if not pd.isna(parse_rate(r)) else parse_rate(o) for r, o in zip(recorded, from_overrides)]
    return pd.Series(values, index=frame.index, dtype=float)


def is_rate_sweep(frame: pd.DataFrame) -> bool:
    """True when the jobs were offered more than one request rate (a serving sweep, declared or not)."""
    rates = request_rates(frame)
    return rates.notna().any() and rates.dropna().nunique() > 1


def slo_of(frame: pd.DataFrame) -> dict[str, float | None]:
    """The SLOs the records judged by (``{"ttft_ms": 2000.0, "tpot_ms": 50.0, "e2e_ms": None}``); an error
    when the records disagree (goodputs under different SLOs are not comparable)."""
    found: dict[str, float | None] = {}
    for key in SLO_KEYS:
        column = SLO_PREFIX + key
        values = {float(v) for v in stats.finite_values(frame[column])} if column in frame else set()
        if len(values) > 1:
            shown = ", ".join(f"{v:g}" for v in sorted(values))
            raise ValueError(f"the records use different SLOs ({column}: {shown}); report them apart")
        found[key] = values.pop() if values else None
    return found


def numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def with_attainment(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with each job's rate (``request_rate``) and SLO attainment (goodput over throughput)."""
    throughput = numeric(frame, "request_s")
    share = numeric(frame, ATTAINMENT).fillna(numeric(frame, "goodput_req_s") / throughput.where(throughput > 0))
    return frame.assign(request_rate=request_rates(frame), **{ATTAINMENT: share})


def point_row(trials: pd.DataFrame) -> dict:
    """Median, min and max over the successful trials of every serving metric, and the status."""
    ok = trials[trials["status"] == "ok"]
    row: dict = {"trials": len(trials), "ok_trials": len(ok), "status": status_summary(trials)}
    for metric in POINT_METRICS:
        values = ok[metric] if metric in ok else pd.Series(dtype=float)
        low, high = stats.spread(values)
        row |= {metric: stats.median(values), f"{metric}.min": low, f"{metric}.max": high}
    return row


def points_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration, rate): configurations in job order, rates ascending (``inf``, then
    unknown, last)."""
    measured = with_attainment(frame)
    rows = []
    for config in config_order(measured):
        jobs = measured[measured["config"] == config]
        for rate, trials in jobs.groupby("request_rate", dropna=False, sort=True):
            rows.append({"config": config, "request_rate": float(rate), **point_row(trials)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- sustained rates


def within_share(points: pd.DataFrame, share: float) -> pd.Series:
    """Per point: did the median share of requests within every SLO reach ``share``?"""
    return points[ATTAINMENT] >= share


def within_p99(points: pd.DataFrame, slo: Mapping[str, float | None]) -> pd.Series:
    """Per point: was the median p99 of every judged latency within its SLO? (NA when none is judged)"""
    judged = {key: bound for key, bound in slo.items() if bound is not None}
    if not judged:
        return pd.Series(pd.NA, index=points.index, dtype="boolean")
    met = pd.Series(True, index=points.index)
    for key, bound in judged.items():
        met &= points.get(f"{key}_p99", pd.Series(np.nan, index=points.index)) <= bound
    return met


def sustained(rates: Sequence[float], met: Sequence[bool]) -> tuple[float, float]:
    """(highest rate met at it and at every lower rate, first rate missed); NaN where there is none.
    ``rates`` ascending."""
    best, missed = math.nan, math.nan
    for rate, ok in zip(rates, met):
        if not ok:
            missed = rate
            break
        best = rate
    return best, missed


def peak(points: pd.DataFrame, metric: str) -> tuple[float, float]:
    """(highest median ``metric`` over the rates, the rate it was reached at); NaN when none."""
    values = points[metric].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return math.nan, math.nan
    best = int(np.nanargmax(values))
    return float(values[best]), float(points["request_rate"].iloc[best])


def sustained_table(
    points: pd.DataFrame, slo: Mapping[str, float | None], share: float, baselines: Mapping[str, str | None]
) -> pd.DataFrame:
    """Per configuration: the sustained rate by each definition, the first rate missed, its ratio to
    its baseline's sustained rate, and the peak goodput with the rate it came at."""
    judged = any(bound is not None for bound in slo.values())
    rows = []
    for config, group in points[points["request_rate"].notna()].groupby("config", sort=False):
        rates = list(group["request_rate"])
        by_share = sustained(rates, list(within_share(group, share))) if judged else (math.nan, math.nan)
        by_p99 = sustained(rates, list(within_p99(group, slo).fillna(False))) if judged else (math.nan, math.nan)
        goodput, at = peak(group, "goodput_req_s")
        rows.append({
            "config": config, "baseline": baselines.get(config), "sustained": by_share[0], "missed": by_share[1],
            "sustained_p99": by_p99[0], "missed_p99": by_p99[1], "peak_goodput": goodput, "peak_goodput_rate": at,
            "trials": int(group["trials"].sum()), "ok_trials": int(group["ok_trials"].sum()),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    of = dict(zip(table["config"], table["sustained"]))
    table["vs_baseline"] = [ratio(value, of.get(base)) for value, base in zip(table["sustained"], table["baseline"])]
    return table


def ratio(value: float, base: float | None) -> float:
    """value / base where both are finite and positive, else NaN."""
    if base is None or not all(np.isfinite([value, base])) or base <= 0:
        return math.nan
    return value / base
