"""Options of attention=triton checked before any weight loads: a decode tile that is not a power of two
in 16..256, or a register cap that is not a multiple of 8 in 64..248, is refused, naming the switch. That
the tile changes no token is checked on the GPU (test_gpu_engine.py) and under the interpreter
(triton_interpreter_kernels.py); prefetch_kv and the register cap reach the decode kernel (what the
prefetch changes: decode_prefetch_interpreter_kernels.py, test_triton_kernels_gpu.py; the cap:
test_fp8_kernels_gpu.py)."""

import pytest

pytest.importorskip("triton")
from allmos.attention.kernels.decode import default_block_n  # imported here, outside TRITON_INTERPRET=1
from allmos.attention.kernels.decode_heuristics import stages_for_kv_buffers
from allmos.config import EngineConfig
from allmos.errors import ConfigError
from allmos.validation import check_plugins


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the plugin's check accepts the CPU only under it


def check(**options) -> None:
    config = EngineConfig.create(device="cpu", attention={"name": "triton", **options})
    check_plugins(config)


@pytest.mark.parametrize("block_n", [8, 96, 512])
def test_a_decode_tile_outside_16_to_256_or_not_a_power_of_two_is_refused(block_n, interpreter):
    with pytest.raises(ConfigError, match="attention.decode_block_n") as refused:
        check(decode_block_n=block_n)
    assert refused.value.switch == "attention.decode_block_n"


@pytest.mark.parametrize("block_n", [None, 16, 128, 256])
def test_decode_tiles_that_run(block_n, interpreter):
    check(decode_block_n=block_n)


@pytest.mark.parametrize("cap", [32, 100, 256, "168", -8, False])
def test_a_register_cap_outside_64_to_248_or_not_a_multiple_of_8_is_refused(cap, interpreter):
    with pytest.raises(ConfigError, match="attention.decode_max_registers") as refused:
        check(decode_max_registers=cap)
    assert refused.value.switch == "attention.decode_max_registers"


@pytest.mark.parametrize("cap", [None, 0, 64, 168, 248])
def test_register_caps_that_run(cap, interpreter):
    check(decode_max_registers=cap)


@pytest.mark.parametrize("buffers", [0, 3, "2", 2.0, True])
def test_a_kv_buffer_count_other_than_1_or_2_is_refused(buffers, interpreter):
    with pytest.raises(ConfigError, match="attention.decode_kv_buffers") as refused:
        check(decode_kv_buffers=buffers)
    assert refused.value.switch == "attention.decode_kv_buffers"


@pytest.mark.parametrize("buffers", [None, 1, 2])
def test_kv_buffer_counts_that_run(buffers, interpreter):
    check(decode_kv_buffers=buffers)


def test_kv_buffers_map_to_the_triton_stages_that_give_them():
    """Measured on sm_90 compiles (kernel_resources): Triton 3.3 and 3.4 give a second K/V buffer at 3 stages
    (4 buffers at 5, too many for 3 programs an SM); 3.5 and 3.6 spend stages 3 and 4 on the block-table load."""
    assert [stages_for_kv_buffers(b, "3.6.0") for b in (1, 2)] == [2, 5]
    assert [stages_for_kv_buffers(b, "3.5.1") for b in (1, 2)] == [2, 5]
    assert [stages_for_kv_buffers(b, "3.4.0") for b in (1, 2)] == [2, 3]
    assert [stages_for_kv_buffers(b, "3.3.0") for b in (1, 2)] == [2, 3]
    assert stages_for_kv_buffers(1) == 2
    with pytest.raises(ValueError, match="1 or 2"):
        stages_for_kv_buffers(3)


def test_the_default_decode_tile_grows_once_the_launch_fills_the_gpu():
    assert default_block_n(1, 8) == 64
    assert default_block_n(16, 8, num_sms=132) == 64  # 128 programs: fewer than the SMs
    assert default_block_n(17, 8, num_sms=132) == 128
    assert default_block_n(256, 8) == 128


def test_the_triton_backend_builds_its_own_metadata_from_the_common_one_also_for_graph_capture():
    """A CUDA graph's static buffers go through the same common builder and the same backend builder."""
    import torch

    from allmos.attention.backend import HeadShape
    from allmos.attention.triton_backend import TritonBackend, TritonMetadata, TritonOptions
    from allmos.graph_runner.cuda_graph import StaticInputs
    from allmos.registry import BuildContext

    backend = TritonBackend(TritonOptions(name="triton"), BuildContext(heads=HeadShape(4, 2, 16, 0.25)))
    common = StaticInputs(4, 2, 16, 24, torch.device("cpu")).meta(3, 2)
    assert common.max_seqlen_k == 24 and common.query_lens_host == [1, 1, 1] and common.batch_size == 3
    meta = backend.build_metadata(common)
    assert isinstance(meta, TritonMetadata) and meta.block_tables is common.block_tables
    assert meta.seq_order.shape == (3,) and meta.counters is not None
    assert not hasattr(common, "seq_order")  # the common metadata is not mutated


@pytest.mark.parametrize("prefetch_kv,cap,buffers", [(True, None, None), (False, 168, 2)])
def test_the_prefetch_register_and_buffer_options_reach_the_decode_kernel(prefetch_kv, cap, buffers):
    import types

    import torch

    from allmos.attention.backend import HeadShape
    from allmos.attention.triton_backend import TritonBackend, TritonOptions
    from allmos.graph_runner.cuda_graph import StaticInputs
    from allmos.registry import BuildContext

    options = TritonOptions(name="triton", prefetch_kv=prefetch_kv, decode_max_registers=cap, decode_kv_buffers=buffers)
    backend = TritonBackend(options, BuildContext(heads=HeadShape(4, 2, 16, 0.25)))
    calls = []
    backend.decode = types.SimpleNamespace(paged_decode_attention=lambda *args, **kwargs: calls.append(kwargs))
    meta = backend.build_metadata(StaticInputs(4, 2, 16, 24, torch.device("cpu")).meta(3, 2))
    cache = torch.zeros(4, 16, 2, 16)
    backend.forward(torch.zeros(3, 4, 16), None, None, cache, cache, meta)
    assert len(calls) == 1 and calls[0]["prefetch_kv"] is prefetch_kv and calls[0]["max_registers"] == cap
    assert calls[0]["num_stages"] == (None if buffers is None else stages_for_kv_buffers(buffers))
