"""On a machine without CUDA, `python run.py` (single run or sweep) starts from the CPU defaults.

It adds `+machine=cpu` (conf/machine/cpu.yaml) in front of the user's overrides, so every key the
user sets, directly or through an experiment's points, still wins; it says so on stderr (stdout
stays clean for `--cfg job > cfg.yaml`), and `--cfg job` and the result record show what ran.
"""

from __future__ import annotations

import sys

MACHINE_OVERRIDE = "+machine=cpu"
QUIET_FLAGS = ("--help", "-h", "--hydra-help", "--version", "--shell-completion", "-sc")


def with_machine_defaults(argv: list[str], has_cuda: bool) -> list[str]:
    if has_cuda or any(arg.lstrip("+~").startswith("machine=") for arg in argv[1:]):
        return argv
    if not any(flag in argv for flag in QUIET_FLAGS):
        print(
            f"allmos: no CUDA device here, so the defaults become the CPU ones ({MACHINE_OVERRIDE}: "
            "attention=sdpa kv_store=torch rope=torch linear=torch sampler=gumbel cuda_graphs=false "
            "compile=false workload=smoke); what you set still wins",
            file=sys.stderr,
        )
    # Before the first override, so all overrides stay one run of arguments (Hydra's parser needs
    # that); with none, right after the program name, never after a flag that takes a value (--info).
    first = next((i for i, a in enumerate(argv) if i > 0 and is_override(a)), 1)
    return argv[:first] + [MACHINE_OVERRIDE] + argv[first:]


def is_override(arg: str) -> bool:
    return "=" in arg and not arg.startswith("-")
