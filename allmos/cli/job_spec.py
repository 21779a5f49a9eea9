"""Turn the composed Hydra config into a JobSpec."""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

from allmos.bench.job import JobSpec
from allmos.cli.schema import engine_fields
from allmos.models.prepare import prepare_model


def engine_options(cfg: DictConfig) -> dict:
    options = {name: to_plain(cfg[name]) for name, _, _ in engine_fields()}
    model = cfg.model
    options["model"] = os.path.expanduser(model.path) if model.path else None
    if model.get("prepare"):
        options["model"] = prepare_model(model.prepare)
    options["model_name"] = model.name
    options["architecture"] = to_plain(model.architecture)
    options["random_weights"] = model.random_weights
    return options


def to_plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def job_spec(cfg: DictConfig, job: dict) -> JobSpec:
    return JobSpec(
        engine=engine_options(cfg),
        workload=to_plain(cfg.workload),
        model_name=cfg.model.name,
        trial=cfg.trial,
        job=job,
        config=OmegaConf.to_container(cfg, resolve=True),
        probe=cfg.probe,
    )
