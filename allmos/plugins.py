"""Importing this module registers every built-in plugin. A new plugin adds its module here."""

import importlib
import logging

_BUILTIN = (
    "allmos.scheduler.continuous",
    "allmos.block_manager.paged",
    "allmos.block_manager.prefix_caching",
    "allmos.attention.sdpa",
    "allmos.attention.triton_backend",
    "allmos.attention.flash",
    "allmos.kv_store.torch_store",
    "allmos.kv_store.triton_store",
    "allmos.rope.torch_rope",
    "allmos.rope.triton_rope",
    "allmos.linear.torch_linear",
    "allmos.linear.triton_linear",
    "allmos.sampling.gumbel",
    "allmos.sampling.triton_sampler",
    "allmos.graph_runner.base",
    "allmos.graph_runner.cuda_graph",
    "allmos.models.qwen3",
    "allmos.models.qwen2",
    "allmos.models.llama",
)

for _module in _BUILTIN:
    importlib.import_module(_module)

logging.getLogger(__name__).debug("registered %d plugin modules", len(_BUILTIN))
