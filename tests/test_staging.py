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
