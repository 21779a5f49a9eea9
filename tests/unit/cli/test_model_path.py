"""Where the weights come from: random only when asked or when the default folder is absent; a path
the user set must hold a checkpoint, and wins over a preset's prepared folder."""

import os

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from models import save_tiny_model
from repo_paths import ROOT

from allmos.cli import job_spec as job_spec_module
from allmos.cli.job_spec import engine_options, job_spec
from allmos.cli.schema import register_schemas
from allmos.errors import ConfigError


@pytest.fixture(scope="module", autouse=True)
def schemas():
    register_schemas()


def spec_of(*overrides: str):
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return job_spec(cfg, {"num": 0}, overrides=list(overrides))


def test_absent_default_folder_runs_random_weights_and_the_record_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLMOS_MODELS", str(tmp_path))
    spec = spec_of()
    assert spec.engine["model"] is None and spec.engine["random_weights"] == "if_missing"
    assert (
        spec.config["model"]["weights_from"] == f"random (the default folder {tmp_path}/Qwen3-0.6B holds no checkpoint)"
    )


def test_present_default_folder_loads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLMOS_MODELS", str(tmp_path))
    save_tiny_model(tmp_path / "Qwen3-0.6B")
    spec = spec_of()
    assert spec.engine["model"] == f"{tmp_path}/Qwen3-0.6B"
    assert spec.config["model"]["weights_from"] == f"{tmp_path}/Qwen3-0.6B (model.path default)"


def test_a_path_the_user_set_must_hold_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="^model.path: '/tmp/does-not-exist' does not exist"):
        spec_of("model.path=/tmp/does-not-exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="^model.path: .* has no config.json"):
        spec_of(f"model.path={tmp_path}/empty")
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="^model.path: .* holds no checkpoint files"):
        spec_of(f"model.path={tmp_path}/empty")
    folder = save_tiny_model(tmp_path / "tiny")
    spec = spec_of(f"model.path={folder}")
    assert spec.engine["model"] == folder and spec.engine["random_weights"] == "never"
    assert spec.config["model"]["weights_from"] == f"{folder} (model.path)"


def test_a_preset_model_honours_a_path_override(tmp_path, monkeypatch):
    def no_prepare(name):
        raise AssertionError("the prepared cache must not be used when model.path is set")

    monkeypatch.setattr(job_spec_module, "prepare_model", no_prepare)
    folder = save_tiny_model(tmp_path / "tiny")
    assert spec_of("model=smollm2-135m", f"model.path={folder}").engine["model"] == folder
    monkeypatch.setattr(job_spec_module, "prepare_model", lambda name: folder)
    options = engine_options(compose_plain("model=smollm2-135m"), overrides=["model=smollm2-135m"])
    assert options["model"] == folder  # without a path override the preset's prepared folder


def compose_plain(*overrides):
    with initialize_config_dir(config_dir=os.path.join(ROOT, "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("text", ["What is 2+2, in words?", "Grüße aus Köln: ä, ö, ü — 東京", 'It\'s "quoted", [a, b]'])
def test_readme_prompt_quoting_survives_hydra_parser(text):
    """The README's form: the shell passes prompt='...' with the text inside Hydra's own quotes."""
    quoted = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    (override,) = OverridesParser.create().parse_overrides([f"prompt={quoted}"])
    assert override.value() == text
    assert compose_plain(f"prompt={quoted}").prompt == text
    if '"' not in text:  # the README's `'prompt="..."'`: single quotes for the shell, double for Hydra
        assert compose_plain(f'prompt="{text}"').prompt == text
