"""Step inputs reach the device as typed views of one copy; on CUDA from pinned memory, 16-byte aligned."""

import numpy as np
import pytest
import torch

from allmos.engine.readback import TokenReadback
from allmos.engine.staging import ALIGN, HostStaging


def arrays():
    return {
        "ids": np.arange(5, dtype=np.int64),
        "context": np.array([3, 1, 4], dtype=np.int32),
        "temps": np.array([0.5, 0.0, 1.25], dtype=np.float32),
        "table": np.arange(6, dtype=np.int32).reshape(2, 3),
    }


def check_round_trip(out: dict, device_type: str) -> None:
    for name, array in arrays().items():
        tensor = out[name]
        assert tensor.device.type == device_type and tuple(tensor.shape) == array.shape
        assert np.array_equal(tensor.cpu().numpy(), array), name


def test_cpu_staging_hands_out_the_arrays():
    check_round_trip(HostStaging(torch.device("cpu")).to_device(arrays()), "cpu")


def test_cpu_readback_returns_the_tokens():
    readback = TokenReadback(torch.device("cpu"), max_rows=4)
    assert readback.finish(readback.start(torch.tensor([7, 8, 9]))) == [7, 8, 9]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_staging_is_one_aligned_copy_and_buffers_are_reused():
    staging = HostStaging(torch.device("cuda"))
    for _ in range(5):  # more rounds than buffers: reuse waits on the copy events
        out = staging.to_device(arrays())
        check_round_trip(out, "cuda")
        assert all(t.data_ptr() % ALIGN == 0 for t in out.values())
    assert all(b is not None and b.is_pinned() for b in staging.buffers)
    readback = TokenReadback(torch.device("cuda"), max_rows=4)
    steps = [readback.start(torch.tensor(v, device="cuda")) for v in ([1, 2], [3, 4, 5])]
    assert [readback.finish(s) for s in steps] == [[1, 2], [3, 4, 5]]


class RecordingStaging:
    """Stands in for HostStaging: keeps the order in which the arrays were packed."""

    def to_device(self, arrays):
        self.order = list(arrays)
        return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}


@pytest.mark.parametrize("is_prefill", [True, False])
def test_positions_are_packed_first(is_prefill):
    """At offset 0 of the one copy, the compiled RoPE sees the same storage offset every step."""
    from allmos import SamplingParams
    from allmos.batch import ScheduledBatch
    from allmos.engine.step_inputs import build_step_inputs
    from allmos.sequence import Sequence

    seqs = [Sequence(i, list(range(5 + i)), SamplingParams()) for i in range(2)]
    for seq in seqs:
        seq.block_table = [2 * seq.seq_id, 2 * seq.seq_id + 1]
        seq.num_computed_tokens = 0 if is_prefill else len(seq) - 1
    counts = [len(s) for s in seqs] if is_prefill else [1, 1]
    staging = RecordingStaging()
    inputs = build_step_inputs(ScheduledBatch(seqs, counts, is_prefill=is_prefill), 4, torch.device("cpu"), staging)
    assert staging.order[0] == "positions"
    expected = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5] if is_prefill else [4, 5]
    assert inputs.positions.tolist() == expected
