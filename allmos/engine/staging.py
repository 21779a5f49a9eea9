"""A step's host arrays reach the device in one copy from pinned memory.

Why pinned and why one copy: a copy from pageable memory makes the host wait for the GPU's queue,
which would stall the host while it prepares the next step ahead of the running one; and every
separate copy is a launch. The arrays are packed into a pinned buffer at aligned offsets,
copied with one non-blocking transfer, and handed out as typed views of the device copy. The
offsets are multiples of 16 bytes: Triton and Inductor compile a kernel variant per pointer
alignment (16 bytes or not), so 8-byte offsets made new prefill kernels compile in the timed run.

Two buffers alternate: the host fills one while the other's copy may still be queued; an event
recorded after each copy guards the buffer's next reuse.
"""

from __future__ import annotations

import numpy as np
import torch

ALIGN = 16


def aligned(nbytes: int) -> int:
    return (nbytes + ALIGN - 1) // ALIGN * ALIGN


class HostStaging:
    def __init__(self, device: torch.device, slots: int = 2):
        self.device = device
        self.pinned = device.type == "cuda"
        self.buffers: list[torch.Tensor | None] = [None] * slots
        self.events: list[torch.cuda.Event | None] = [None] * slots
        self.turn = 0

    def to_device(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        if not self.pinned:
            return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
        offsets, total = {}, 0
        for name, a in arrays.items():
            offsets[name] = total
            total += aligned(a.nbytes)
        slot = self.turn
        self.turn = (self.turn + 1) % len(self.buffers)
        host = self.buffer(slot, total)
        view = host.numpy()
        for name, a in arrays.items():
            view[offsets[name] : offsets[name] + a.nbytes] = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
        device_bytes = host[:total].to(self.device, non_blocking=True)
        self.events[slot] = torch.cuda.Event()
        self.events[slot].record()
        return {name: typed_view(device_bytes, offsets[name], a) for name, a in arrays.items()}

    def buffer(self, slot: int, nbytes: int) -> torch.Tensor:
        """The slot's pinned buffer, once its previous copy has left it; grown when too small."""
        if self.events[slot] is not None:
            self.events[slot].synchronize()
        current = self.buffers[slot]
        if current is None or current.numel() < nbytes:
            current = torch.empty(
                max(nbytes, 2 * (0 if current is None else current.numel()), 1 << 16),
                dtype=torch.uint8,
                pin_memory=True,
            )
            self.buffers[slot] = current
        return current


def typed_view(device_bytes: torch.Tensor, offset: int, like: np.ndarray) -> torch.Tensor:
    dtype = torch.from_numpy(np.empty(0, dtype=like.dtype)).dtype
    return device_bytes[offset : offset + like.nbytes].view(dtype).view(like.shape)
