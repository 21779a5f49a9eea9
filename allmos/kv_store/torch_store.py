import torch

from allmos.kv_store import fp8
from allmos.kv_store.base import KVStore, KVStoreOptions
from allmos.registry import register


@register("kv_store", "torch", options=KVStoreOptions)
class TorchKVStore(KVStore):
    """Plain index writes. The cache holds one spare block past the managed ones: slot -1
    (padding) is redirected there, which avoids a host sync to filter it out. With FP8 caches the
    rows are quantized first (allmos.kv_store.fp8) and their scales written beside the pages."""

    fp8_kv_cache = True

    def write(self, k, v, k_cache, v_cache, slot_mapping, scales=None) -> None:
        block_size = k_cache.shape[1]
        scratch = (k_cache.shape[0] - 1) * block_size
        slots = torch.where(slot_mapping < 0, scratch, slot_mapping)
        if scales is not None:
            k, v = self.quantize(k, scales.k, slots, scales.fixed), self.quantize(v, scales.v, slots, scales.fixed)
            # torch has no index_copy_ for float8: the bytes are copied instead
            k, v, k_cache, v_cache = (t.view(torch.uint8) for t in (k, v, k_cache, v_cache))
        k_cache.view(-1, *k_cache.shape[2:]).index_copy_(0, slots, k.to(k_cache.dtype))
        v_cache.view(-1, *v_cache.shape[2:]).index_copy_(0, slots, v.to(v_cache.dtype))

    @staticmethod
    def quantize(x, scale_pages, slots, fixed) -> torch.Tensor:
        row_scales = fp8.row_scales(x, fixed)
        fp8.write_scales(scale_pages, slots, row_scales)
        return fp8.quantize(x, row_scales)
