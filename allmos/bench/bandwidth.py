"""The card's measured memory bandwidth: the ceiling every roofline fraction is taken against."""

from __future__ import annotations

import torch


def copy_bandwidth(device, size_bytes: int = 1 << 30, repeats: int = 20) -> float:
    """Device-to-device copy, bytes read plus bytes written per second (median of repeats)."""
    src = torch.randn(size_bytes // 4, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return 2 * src.numel() * src.element_size() / times[len(times) // 2]
