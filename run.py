"""allmos's entry point: `python run.py [switch=value ...]`, `python run.py -m ...` for sweeps."""

import os
import signal
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))


def stop_quietly(signum, frame):
    """Ctrl-C or SIGTERM before a job runs (while torch imports, say): one line, no traceback. A running
    job installs its own handlers, which leave an `interrupted` record."""
    print(f"allmos: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
    sys.exit(128 + signum)


def task(cfg):
    from allmos.cli.app import run_job

    return run_job(cfg)


def main() -> None:
    import hydra
    import torch

    from allmos.cli.machine_defaults import with_machine_defaults
    from allmos.cli.override_check import override_problem
    from allmos.cli.schema import register_schemas

    os.environ.setdefault("ALLMOS_ROOT", ROOT)
    register_schemas()
    sys.argv = with_machine_defaults(sys.argv, torch.cuda.is_available())
    problem = override_problem(sys.argv[1:], os.path.join(ROOT, "conf"))
    if problem:
        print(f"allmos: {problem}", file=sys.stderr)
        sys.exit(1)
    hydra.main(config_path="conf", config_name="config", version_base="1.3")(task)()


if __name__ == "__main__":
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, stop_quietly)
    main()
