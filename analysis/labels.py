"""How configurations are named and coloured in tables and figures.

Names are the experiment's point names where the records have them, otherwise only the switches
that differ across the sweep (:func:`analysis.records.add_config_labels`); what is the same
everywhere goes into one caption line (:func:`constant_caption`). Each configuration keeps one
colour in every figure of a report (:func:`config_colors`).
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Mapping, Sequence

import pandas as pd

from analysis.records import CONFIG_CONTEXT_COLUMNS, SWITCH_PREFIX, config_columns, format_value, short_name

BASELINE_COLOR = "#7f7f7f"
# tab20 without its greys, dark shades first: 18 colours before any repeats
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip


def wrap(label: str, width: int = 24) -> str:
    """A tick label on lines of at most ``width`` characters, broken at spaces."""
    lines = textwrap.wrap(str(label), width, break_on_hyphens=False, break_long_words=False)
    return "\n".join(lines) or str(label)


def has_points(frame: pd.DataFrame) -> bool:
    return "point" in frame and bool(frame["point"].notna().any())


def settings(frame: pd.DataFrame, label: str) -> dict[str, str]:
    """``{name: formatted value}`` of every switch and context column of one configuration."""
    row = frame[frame["config"] == label].iloc[0]
    columns = [c for c in CONFIG_CONTEXT_COLUMNS if c in frame] + [c for c in frame if c.startswith(SWITCH_PREFIX)]
    return {short_name(c): format_value(row[c]) for c in columns}


def changes(frame: pd.DataFrame, label: str, baseline: str | None) -> str:
    """What ``label`` sets differently from ``baseline``: ``"attention=sdpa cuda_graphs=false"``."""
    if baseline is None or label == baseline:
        return ""
    base, own = settings(frame, baseline), settings(frame, label)
    changed = [k for k, v in own.items() if base.get(k) != v]
    # a plugin's options (attention.pdl) come with the plugin (attention=triton): name the plugin only
    shown = [k for k in changed if k.split(".")[0] == k or k.split(".")[0] not in changed]
    return " ".join(f"{k}={own[k]}" for k in shown) or "(same settings)"


def figure_labels(frame: pd.DataFrame, baselines: Mapping[str, str | None]) -> dict[str, str]:
    """Point names; without them and with one baseline, what each configuration changes from it
    (``attention=sdpa``; the baseline reads ``baseline``); else the configuration labels."""
    single = set(baselines.values())
    if has_points(frame) or len(single) != 1 or None in single:
        return {label: label for label in baselines}
    (base,) = single
    return {label: "baseline" if label == base else changes(frame, label, base) for label in baselines}


def constant_caption(frame: pd.DataFrame) -> str:
    """``model=qwen3-tiny, workload=smoke, attention=sdpa, ...``: settings shared by every record."""
    varying = set(config_columns(frame))
    columns = [c for c in CONFIG_CONTEXT_COLUMNS if c in frame] + [c for c in frame if c.startswith(SWITCH_PREFIX)]
    constant = [c for c in columns if c not in varying and frame[c].notna().any()]
    constant = [c for c in constant if c in CONFIG_CONTEXT_COLUMNS or short_name(c) not in CONFIG_CONTEXT_COLUMNS]
    return ", ".join(f"{short_name(c)}={format_value(frame[c].dropna().iloc[0])}" for c in constant)


def config_colors(order: Sequence[str], baselines: Sequence[str] = (), series: Mapping[str, str] | None = None) -> dict:
    """One colour per configuration (or per series, where ``series`` maps configurations to one);
    baselines grey."""
    keys = [(series or {}).get(label, label) for label in order]
    colours = dict(zip(dict.fromkeys(k for k, label in zip(keys, order) if label not in baselines),
                       itertools.cycle(PALETTE)))  # fmt: skip
    return {label: BASELINE_COLOR if label in baselines and series is None else colours.get(key, BASELINE_COLOR)
            for key, label in zip(keys, order)}  # fmt: skip


# --------------------------------------------------------------------------- cumulative ablations


def is_cumulative(frame: pd.DataFrame, order: Sequence[str]) -> bool:
    """True when each configuration differs from the first in strictly more settings than the one before."""
    first = settings(frame, order[0])
    distances = [sum(v != first.get(k) for k, v in settings(frame, label).items()) for label in order]
    return len(order) > 1 and all(a < b for a, b in itertools.pairwise(distances))


def step_labels(frame: pd.DataFrame, order: Sequence[str]) -> list[str]:
    """Tick labels of a staircase: point names where present, else the first configuration and then
    the ``+k=v`` changes of each step."""
    if has_points(frame):
        return list(order)
    values = [settings(frame, label) for label in order]
    steps = [
        " ".join(f"+{k}={v}" for k, v in now.items() if before.get(k) != v) or "(no change)"
        for before, now in itertools.pairwise(values)
    ]
    return [order[0]] + steps if order else []
