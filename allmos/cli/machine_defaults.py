"""On a machine without CUDA, `python run.py` turns to a small CPU job instead of failing.

The overrides are added to the command line only for keys the user did not set, and printed, so
`--cfg job` and the result record show exactly what ran.
"""

from __future__ import annotations

CPU_OVERRIDES = {
    "workload": "smoke",
    "attention": "sdpa",
    "kv_store": "torch",
    "rope": "torch",
    "cuda_graphs": "false",
    "compile": "false",
}


def user_keys(argv: list[str]) -> set[str]:
    keys = set()
    for arg in argv:
        if is_override(arg):
            keys.add(arg.split("=", 1)[0].lstrip("+~"))
    return keys


def with_machine_defaults(argv: list[str], has_cuda: bool) -> list[str]:
    """Single runs only: a sweep (-m) runs exactly as configured, so its experiment's points
    are never silently replaced; points that cannot run here leave failure records."""
    if has_cuda or "-m" in argv or "--multirun" in argv:
        return argv
    given = user_keys(argv[1:])
    extra = [f"{k}={v}" for k, v in CPU_OVERRIDES.items() if k not in given]
    if not extra:
        return argv
    print(f"allmos: no CUDA device here, so the defaults become: {' '.join(extra)}")
    # Keep every override in one run of arguments, as Hydra's argument parser needs.
    first = next((i for i, a in enumerate(argv) if i > 0 and is_override(a)), len(argv))
    return argv[:first] + extra + argv[first:]


def is_override(arg: str) -> bool:
    return "=" in arg and not arg.startswith("-")
