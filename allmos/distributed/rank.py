"""One tensor-parallel rank's model runner, and how a step's inputs travel from rank 0 to the others.

Rank 0 builds a step's inputs once, on the host, from the scheduled batch; the other ranks receive
those host arrays (never the batch's Sequence objects) and copy them to their own device.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
import torch.distributed as dist

from allmos.batch import LaunchedStep, ScheduledBatch, StepOutput
from allmos.engine.model_runner import ModelRunner
from allmos.engine.step_inputs import StepInputs, build_step_inputs
from allmos.layers.parallel import ParallelInfo

HOST = torch.device("cpu")


class Struct(NamedTuple):
    """A dataclass instance on the wire: its class and its fields."""

    cls: type
    values: dict


def to_wire(value: Any) -> Any:
    """Host tensors become numpy arrays (cheap to pickle), dataclasses a Struct; the rest as is."""
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return Struct(type(value), {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)})
    return value


def from_wire(value: Any, device: torch.device) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value).to(device, non_blocking=True)
    if isinstance(value, Struct):
        return value.cls(**{name: from_wire(v, device) for name, v in value.values.items()})
    return value


class Peers(Protocol):
    """How a rank talks to the others outside the model's collectives (pipes to or from rank 0)."""

    def barrier(self) -> None: ...

    def agree_min(self, value: int) -> int: ...

    def send_step(self, wire: Any) -> None: ...

    def check(self) -> None: ...


class RankRunner(ModelRunner):
    """A ModelRunner on one rank of N. Rank 0 leads each step (`lead`), the others `follow`.

    Sizing the cache waits until every rank holds its weights (so no rank enters a collective
    while another failed to load), then takes the smallest block count of all ranks.
    """

    def __init__(self, config, hf_config, weights: str, tp: ParallelInfo, peers: Peers, stats=None):
        self.peers = peers
        super().__init__(config, hf_config, weights, tp, stats)

    def size_cache(self) -> int:
        self.peers.barrier()
        return self.peers.agree_min(super().size_cache())

    def prepare(self, batch: ScheduledBatch, prev: LaunchedStep | None) -> StepInputs:
        """Rank 0: send the step's host arrays to the other ranks, then copy them to this device. A
        look-ahead step's input ids exist only on this device (the running step samples them): they
        are broadcast to the other ranks on the device, with no host round trip."""
        ahead = batch.ahead_rows is not None
        placeholder = torch.zeros(len(prev.batch), dtype=torch.int64) if ahead else None
        seed = self.sampler.next_seed()
        wire = to_wire(build_step_inputs(batch, self.config.block_size, HOST, prev_tokens=placeholder, seed=seed))
        self.peers.send_step((wire, ahead))
        inputs = from_wire(wire, self.device)
        if ahead:
            rows = torch.as_tensor(batch.ahead_rows, dtype=torch.int64).to(self.device, non_blocking=True)
            inputs.input_ids = prev.tokens[rows]
            dist.broadcast(inputs.input_ids, src=0)
        return inputs

    def collect(self, step: LaunchedStep) -> StepOutput:
        output = super().collect(step)
        self.peers.check()  # a worker that failed during the step has reported by now: raise its error
        return output

    @torch.inference_mode()
    def follow(self, message: tuple[Any, bool]) -> None:
        wire, ahead = message
        inputs = from_wire(wire, self.device)
        if ahead:
            dist.broadcast(inputs.input_ids, src=0)
        self.step_outputs(inputs, inputs.temperatures.shape[0])  # the LM head's all-gather needs every rank
