"""Which configuration each configuration is compared with.

A baseline is named by a point name (``all_on``) or by switch values (``"attention=sdpa,cuda_graphs=false"``):
given with ``--baseline``, else the experiment's declared ``experiment.baseline``, else the default rule
(:data:`DEFAULT_RULE`). A name that matches more than one configuration is refused, listing the matches,
unless the comparison is grouped (``--per``, or an experiment of kind ``sweep``): then every group of
configurations that agree in the other swept columns must hold exactly one match, its own baseline
(prefix caching off vs on at each prefix share).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from analysis.records import (
    CONFIG_CONTEXT_COLUMNS,
    SWITCH_PREFIX,
    config_columns,
    config_order,
    format_value,
    parse_overrides,
    short_name,
    switch_key,
)

DEFAULT_RULE = "fewest true switches among configurations with a successful trial; ties: first job"


@dataclass(frozen=True)
class Baselines:
    """``of[config]`` is the baseline label of ``config`` (None: no baseline in its group)."""

    of: Mapping[str, str | None]
    source: str  # how it was chosen, for the report header
    grouped_by: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(b for b in self.of.values() if b is not None))


def resolve_column(frame: pd.DataFrame, key: str) -> str:
    if key in CONFIG_CONTEXT_COLUMNS and key in frame.columns:
        return key
    name = switch_key(key, [short_name(c) for c in frame.columns if c.startswith(SWITCH_PREFIX)])
    if name is not None:
        return SWITCH_PREFIX + name
    known = sorted(short_name(c) for c in frame.columns if c.startswith(SWITCH_PREFIX))
    raise ValueError(f"unknown switch {key!r} in baseline; known switches: {', '.join(known)}")


def spec_columns(frame: pd.DataFrame, spec: str) -> dict[str, str]:
    """``{column: formatted value}`` of a switch-value baseline."""
    return {resolve_column(frame, key): format_value(value) for key, value in parse_overrides(spec).items()}


def is_point(frame: pd.DataFrame, name: str) -> bool:
    return "point" in frame and name in set(frame["point"].dropna().astype(str))


def matching_configs(frame: pd.DataFrame, spec: str) -> list[str]:
    """Configuration labels named by ``spec``: a point name, else switch values all of which match."""
    if is_point(frame, spec):
        return config_order(frame[frame["point"].astype("string") == spec])
    if "=" not in spec:
        have = ", ".join(config_order(frame))
        raise ValueError(f"baseline {spec!r} is neither a point name nor key=value switches; have: {have}")
    wanted = spec_columns(frame, spec)
    firsts = frame.drop_duplicates("config")
    hits = [all(format_value(row[c]) == v for c, v in wanted.items()) for _, row in firsts.iterrows()]
    return list(firsts[hits]["config"])


def enabled_switch_count(row: pd.Series) -> int:
    """How many switches of a row are turned on (boolean true)."""
    return sum(format_value(row[c]) == "true" for c in row.index if c.startswith(SWITCH_PREFIX))


def fewest_enabled(frame: pd.DataFrame, labels: Sequence[str]) -> str:
    """Among ``labels``, the configuration with the fewest true switches; ties go to the first job."""
    firsts = frame.drop_duplicates("config").set_index("config")
    return min(labels, key=lambda label: enabled_switch_count(firsts.loc[label]))


def default_baseline(frame: pd.DataFrame) -> str:
    succeeded = config_order(frame[frame["status"] == "ok"])
    return fewest_enabled(frame, succeeded or config_order(frame))


def declared_baseline(frame: pd.DataFrame) -> str | None:
    """The experiment's declared baseline; an error when the records disagree about it."""
    if "experiment_baseline" not in frame:
        return None
    declared = sorted(set(frame["experiment_baseline"].dropna().astype(str)))
    if len(declared) > 1:
        raise ValueError(f"the records declare different baselines {declared}: give --baseline")
    return declared[0] if declared else None


def group_key(row: pd.Series, columns: Sequence[str]) -> tuple[str, ...]:
    return tuple(format_value(row[c]) for c in columns)


def grouped(frame: pd.DataFrame, spec: str, matches: Sequence[str], per: Sequence[str]) -> dict[str, str | None]:
    """Each configuration's baseline: the match that agrees with it in the ``per`` columns."""
    firsts = frame.drop_duplicates("config").set_index("config")
    by_group: dict[tuple[str, ...], list[str]] = {}
    for label in matches:
        by_group.setdefault(group_key(firsts.loc[label], per), []).append(label)
    for key, labels in by_group.items():
        if len(labels) > 1:
            raise ValueError(f"baseline {spec!r} matches {len(labels)} configurations at {dict(zip(per, key))}: "
                             f"{', '.join(labels)}; name one (a point name or more switches)")  # fmt: skip
    return {label: (by_group.get(group_key(firsts.loc[label], per)) or [None])[0] for label in firsts.index}


def choose_baselines(
    frame: pd.DataFrame, override: str | None = None, per: Sequence[str] = (), kind: str | None = None
) -> Baselines:
    """The baseline of every configuration of a labelled frame (see the module docstring)."""
    declared = declared_baseline(frame)
    spec = override or declared
    labels = config_order(frame)
    if not spec:
        base = default_baseline(frame)
        return Baselines(dict.fromkeys(labels, base), DEFAULT_RULE)
    source = f"--baseline {spec}" if override else f"declared by the experiment ({spec})"
    matches = matching_configs(frame, spec) if override or is_point(frame, spec) or "=" in spec else []
    if not matches and not override:  # a sweep of some of the experiment's points, without its baseline
        base = default_baseline(frame)
        return Baselines(dict.fromkeys(labels, base), f"the declared {spec!r} is not in this sweep; {DEFAULT_RULE}")
    if not matches:
        raise ValueError(f"no configuration matches baseline {spec!r}; have: {', '.join(labels)}")
    if len(matches) == 1:
        return Baselines(dict.fromkeys(labels, matches[0]), source)
    if not per and kind == "sweep" and "=" in spec:
        named = set(spec_columns(frame, spec))
        per = [c for c in config_columns(frame) if c not in named]
    if not per:
        raise ValueError(f"baseline {spec!r} matches {len(matches)} configurations: {', '.join(matches)}; "
                         "name one (a point name or more switches), or compare within groups with --per")  # fmt: skip
    per = [c if c in frame else resolve_column(frame, c) for c in per]
    return Baselines(grouped(frame, spec, matches, per), source, tuple(short_name(c) for c in per))


def choose_baseline(frame: pd.DataFrame, override: str | None = None) -> str:
    """The single baseline label (an error when the choice is grouped)."""
    chosen = choose_baselines(frame, override)
    if len(chosen.labels) != 1:
        raise ValueError(f"baseline {override!r} is grouped: {chosen.labels}")
    return chosen.labels[0]
