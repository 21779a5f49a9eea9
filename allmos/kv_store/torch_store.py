import torch

from allmos.kv_store.base import KVStore
from allmos.registry import register


@register("kv_store", "torch")
class TorchKVStore(KVStore):
    """Plain index writes. The cache holds one spare block past the managed ones: slot -1
    (padding) is redirected there, which avoids a host sync to filter it out."""

    def write(self, k, v, k_cache, v_cache, slot_mapping) -> None:
        block_size = k_cache.shape[1]
        scratch = (k_cache.shape[0] - 1) * block_size
        slots = torch.where(slot_mapping < 0, scratch, slot_mapping)
        k_cache.view(-1, *k_cache.shape[2:]).index_copy_(0, slots, k.to(k_cache.dtype))
        v_cache.view(-1, *v_cache.shape[2:]).index_copy_(0, slots, v.to(v_cache.dtype))
