"""A single run's overrides checked by composing them once before Hydra runs the job, so that the commonest
user errors Hydra itself would report in several lines (a misspelt key, a value of the wrong type, a plugin or
workload that does not exist) are one line naming the key:

    allmos: attention.num_splitz: unknown key; `python run.py --cfg job` shows every key
    allmos: workload.num_requests: Value 'abc' of type 'str' could not be converted to Integer
    allmos: attention: 'sdpx' is not one of flash, sdpa, triton

Anything else (sweeps, Hydra's own flags, errors of other kinds) is left to Hydra, which reports it as before.
"""

from __future__ import annotations

import contextlib
import io
import re

MULTI_LINE_CAUSES = ("ConfigKeyError", "ConfigAttributeError", "ValidationError")


def override_problem(args: list[str], config_dir: str) -> str | None:
    """One line naming the key of the first override that cannot compose, for a plain single run (every argument
    an override); None when it composes, or when Hydra should report it itself."""
    if any(arg.startswith("-") for arg in args):
        return None
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException, MissingConfigException

    with initialize_config_dir(config_dir=config_dir, version_base="1.3"), contextlib.redirect_stderr(io.StringIO()):
        try:
            compose(config_name="config", overrides=args, return_hydra_config=True)
        except MissingConfigException as err:
            return _missing_choice(err)
        except ConfigCompositionException as err:
            return _bad_override(err)
        except Exception:  # noqa: BLE001 - Hydra reports every other composition error itself
            return None
    return None


def _missing_choice(err) -> str | None:
    """`attention=sdpx`: the group and the options it has."""
    group, _, name = (err.missing_cfg_file or "").rpartition("/")
    if not group or not err.options:
        return None
    return f"{group}: {name!r} is not one of {', '.join(err.options)}"


def _bad_override(err) -> str | None:
    """`attention.num_splitz=4` (no such key) or `workload.num_requests=abc` (a value of the wrong type)."""
    cause = err.__cause__
    if type(cause).__name__ not in MULTI_LINE_CAUSES:
        return None
    named = re.search(r"override '?([^'\s=]+)", str(err))
    key = named.group(1) if named else getattr(cause, "full_key", None)
    if not key:
        return None
    if type(cause).__name__ == "ValidationError":
        return f"{key}: {str(cause).splitlines()[0]}"
    shown_by = "hydra" if key.startswith("hydra.") else "job"
    return f"{key}: unknown key; `python run.py --cfg {shown_by}` shows every key"
