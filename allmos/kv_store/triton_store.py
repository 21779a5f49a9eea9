from dataclasses import dataclass

from allmos.kv_store.base import KVStore, KVStoreOptions, check_fp8_scale
from allmos.registry import register
from allmos.triton_shared.support import TritonPlugin


@dataclass
class TritonStoreOptions(KVStoreOptions):
    fuse_rope: bool = True  # with rope=triton, its kernel writes K/V (one launch fewer per layer)


@register("kv_store", "triton", options=TritonStoreOptions)
class TritonKVStore(TritonPlugin, KVStore):
    """One Triton program per token writes all its heads; slot -1 (graph padding) is skipped. With
    rope=triton and `fuse_rope` (default), the rope kernel writes the rotated K and V itself, in this
    store's layout, and `write` is not called; with rope=torch the store runs as its own kernel. With
    FP8 caches either kernel quantizes each (token, kv head) row in registers and writes its scale."""

    fp8_kv_cache = True

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        from allmos.kv_store.kernels.store import store_kv_triton

        self.store = store_kv_triton

    @classmethod
    def check(cls, options, where) -> None:
        super().check(options, where)  # TritonPlugin's: where Triton runs
        check_fp8_scale(options.fp8_scale, where.kv_cache_dtype)

    def write(self, k, v, k_cache, v_cache, slot_mapping, scales=None) -> None:
        self.store(k, v, k_cache, v_cache, slot_mapping, scales)

    def fuses_into_rope(self) -> bool:
        return self.options.fuse_rope
