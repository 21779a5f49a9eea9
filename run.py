"""allmos's entry point: `python run.py [switch=value ...]`, `python run.py -m ...` for sweeps."""

import os
import sys

import hydra
import torch
from omegaconf import DictConfig

from allmos.cli.app import run_job
from allmos.cli.machine_defaults import with_machine_defaults
from allmos.cli.schema import register_schemas

os.environ.setdefault("ALLMOS_ROOT", os.path.dirname(os.path.abspath(__file__)))


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig):
    return run_job(cfg)


if __name__ == "__main__":
    register_schemas()
    sys.argv = with_machine_defaults(sys.argv, torch.cuda.is_available())
    main()
