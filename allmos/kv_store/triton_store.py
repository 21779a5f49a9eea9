from allmos.kv_store.base import KVStore
from allmos.registry import register
from allmos.triton_support import check_triton_device, triton_devices


@register("kv_store", "triton")
class TritonKVStore(KVStore):
    """One Triton program per token writes all its heads; slot -1 (graph padding) is skipped."""

    def __init__(self, options):
        super().__init__(options)
        from allmos.kv_store.triton_kernels import store_kv_triton

        self.store = store_kv_triton

    @classmethod
    def runs_on(cls) -> tuple[str, ...]:
        return triton_devices()

    @classmethod
    def check(cls, config) -> None:
        check_triton_device("kv_store", "kv_store=triton", config.resolved_device)

    def write(self, k, v, k_cache, v_cache, slot_mapping) -> None:
        self.store(k, v, k_cache, v_cache, slot_mapping)
