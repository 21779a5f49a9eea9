"""Sampled token ids back to the host: the decode step's one synchronisation.

On CUDA the ids go into one of two pinned buffers with a non-blocking copy and an event, so the
host can queue the next step before it waits; two buffers because at most two steps are in flight
(the one being collected and the look-ahead one launched before it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Readback:
    host: torch.Tensor
    event: torch.cuda.Event | None


class TokenReadback:
    def __init__(self, device: torch.device, max_rows: int, slots: int = 2):
        self.device = device
        self.buffers = []
        if device.type == "cuda":
            self.buffers = [torch.empty(max_rows, dtype=torch.int64, pin_memory=True) for _ in range(slots)]
        self.turn = 0

    def start(self, tokens: torch.Tensor) -> Readback:
        if not self.buffers:
            return Readback(tokens, None)
        n = tokens.shape[0]
        buffer = self.buffers[self.turn]
        self.turn = (self.turn + 1) % len(self.buffers)
        if n > buffer.shape[0]:  # more rows than max_num_seqs: a one-off prefill of many short prompts
            buffer = torch.empty(n, dtype=torch.int64, pin_memory=True)
        host = buffer[:n]
        host.copy_(tokens.to(torch.int64), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return Readback(host, event)

    def finish(self, readback: Readback) -> list[int]:
        if readback.event is not None:
            readback.event.synchronize()
        return readback.host.tolist()
