import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

from models import save_tiny_model  # noqa: E402


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> str:
    return save_tiny_model(tmp_path_factory.mktemp("tiny_qwen3"), "qwen3")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """One tiny random checkpoint per supported family."""
    return {
        family: save_tiny_model(tmp_path_factory.mktemp(f"tiny_{family}"), family, **overrides)
        for family, overrides in {
            "qwen3": {},
            "qwen2": {},
            "llama": {"tie_word_embeddings": False},
        }.items()
    }
