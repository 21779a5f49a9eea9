"""Turn the composed Hydra config into a JobSpec: the engine's options, the model's weights, the workload."""

from __future__ import annotations

import glob
import os

from omegaconf import DictConfig, OmegaConf

from allmos.bench.job import JobSpec
from allmos.bench.slo import checked_slo
from allmos.bench.workload_checks import checked_workload
from allmos.cli.schema import engine_fields
from allmos.errors import ConfigError
from allmos.models.prepare import prepare_model

CHECKPOINT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")


def engine_options(cfg: DictConfig, overrides: list[str] | None = None) -> dict:
    return options_and_weights(cfg, overrides)[0]


def options_and_weights(cfg: DictConfig, overrides: list[str] | None = None) -> tuple[dict, str]:
    """LLM's keyword arguments, and where the weights come from (for the record)."""
    options = {name: to_plain(cfg[name]) for name, _, _ in engine_fields()}
    folder, random_weights, source = model_weights(cfg.model, path_set_by_user(overrides))
    options["model"] = folder
    options["model_name"] = cfg.model.name
    options["architecture"] = to_plain(cfg.model.architecture)
    options["random_weights"] = random_weights
    return options, source


def model_weights(model: DictConfig, user_path: bool) -> tuple[str | None, str, str]:
    """(folder, random_weights, where the weights come from). Random weights only when the model says
    `random_weights: always`, or `if_missing` and its configured default folder is absent; a path the
    user set must hold a checkpoint, and it wins over a preset's prepared folder."""
    path = os.path.expanduser(model.path) if model.path else None
    if model.random_weights == "always":
        return path, "always", "random (the model's random_weights: always)"
    if user_path:
        check_user_folder(path)
        return path, "never", f"{path} (model.path)"
    if model.get("prepare"):
        path = prepare_model(model.prepare)
        return path, model.random_weights, f"{path} (prepared by model.prepare={model.prepare})"
    if has_checkpoint(path):
        return path, model.random_weights, f"{path} (model.path default)"
    if model.random_weights == "if_missing" and model.architecture is not None:
        return None, "if_missing", f"random (the default folder {path} holds no checkpoint)"
    return path, model.random_weights, f"{path} (model.path default)"  # validate refuses it, naming model


def check_user_folder(path: str | None) -> None:
    if not path or not os.path.isdir(path):
        raise ConfigError("model.path", f"{path!r} does not exist; nothing is ever downloaded")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ConfigError("model.path", f"{path!r} has no config.json")
    if not has_checkpoint(path):
        raise ConfigError("model.path", f"{path!r} holds no checkpoint files ({', '.join(CHECKPOINT_PATTERNS)})")


def has_checkpoint(path: str | None) -> bool:
    if not path or not os.path.isfile(os.path.join(path, "config.json")):
        return False
    return any(glob.glob(os.path.join(path, pattern)) for pattern in CHECKPOINT_PATTERNS)


def path_set_by_user(overrides: list[str] | None) -> bool:
    """Whether the command line (`overrides`; None: there was none) set model.path."""
    return any(o.lstrip("+~").split("=", 1)[0] == "model.path" for o in overrides or [])


def task_overrides() -> list[str]:
    """The running Hydra job's command-line overrides (what the user typed, for `path_set_by_user`)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task)


def to_plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def job_spec(cfg: DictConfig, job: dict, overrides: list[str] | None = None) -> JobSpec:
    workload = checked_workload(to_plain(cfg.workload))  # before any process starts or weights load
    slo = checked_slo(to_plain(cfg.get("slo")))
    engine, weights_from = options_and_weights(cfg, overrides)
    config = OmegaConf.to_container(cfg, resolve=True)
    config["model"]["weights_from"] = weights_from  # the record says where the weights came from
    return JobSpec(
        engine=engine,
        workload=workload,
        model_name=cfg.model.name,
        trial=cfg.trial,
        job=job,
        config=config,
        probe=cfg.probe,
        slo=slo,
    )
