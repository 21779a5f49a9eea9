"""CPU tests of the kernel that loads a replay's inputs into a captured graph's static tensors
(fused_graph_inputs: allmos/graph_runner/kernels/static_inputs.py) through the Triton interpreter, against
the copies and fills it replaces (StaticInputs with fused=False).

Like the other *_interpreter_kernels.py modules, this one runs in a pytest process of its own
(test_triton_kernels_cpu.py). GPU test: test_whole_step_graphs_gpu.py (the engine with and without it)."""

import importlib

import pytest
import torch
from triton_guards import interpreter_loop_bounds, use_triton_interpreter  # noqa: F401 (a fixture)

use_triton_interpreter("test_whole_step_graphs_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_loop_bounds")]

StaticInputs = importlib.import_module("allmos.graph_runner.cuda_graph").StaticInputs
common_metadata = importlib.import_module("allmos.attention.metadata").common_metadata

MAX_BATCH, FULL_WIDTH, BLOCK_SIZE = 80, 40, 16  # 80 rows: two programs of 64; 40 columns: three turns of 16


def stale(fused: bool) -> StaticInputs:
    """Static tensors holding an earlier, larger step's values, as a replay finds them."""
    static = StaticInputs(MAX_BATCH, FULL_WIDTH, BLOCK_SIZE, FULL_WIDTH * BLOCK_SIZE, torch.device("cpu"), fused)
    gen = torch.Generator().manual_seed(7)
    for t in (static.input_ids, static.positions, static.slot_mapping, static.context_lens, static.block_tables):
        t.copy_(torch.randint(1, 1000, t.shape, generator=gen, dtype=t.dtype))
    static.temperatures.copy_(torch.rand(MAX_BATCH, generator=gen))
    return static


def step(n: int, width: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50000, (n,), generator=gen)
    positions = torch.randint(0, width * BLOCK_SIZE, (n,), generator=gen)
    slots = torch.randint(0, 4096, (n,), generator=gen)
    context = positions.to(torch.int32) + 1
    table = torch.randint(0, 500, (n, width), generator=gen, dtype=torch.int32)
    cu_q = torch.arange(n + 1, dtype=torch.int32)
    longest = int(context.max())
    meta = common_metadata(False, slots, context, cu_q, table, [1] * n, context.tolist(), 1, longest, BLOCK_SIZE)
    sampling = (torch.rand(n, generator=gen), torch.tensor([12345 + seed]))
    return ids, positions, meta, sampling


def tensors(static: StaticInputs, n: int) -> dict:
    return {
        "input_ids": static.input_ids,
        "positions": static.positions,
        "slot_mapping": static.slot_mapping,
        "context_lens": static.context_lens,
        "block_tables": static.block_tables,
        "temperatures": static.temperatures[:n],  # padding rows: 0 from the kernel, stale from the copies
        "seed": static.seed,
    }


@pytest.mark.parametrize("n,bucket,width", [(1, 1, 1), (3, 4, 2), (17, 32, 16), (70, 80, 40), (64, 64, 17)])
@pytest.mark.parametrize("with_sampling", [False, True])
def test_the_kernel_loads_what_the_copies_do(n, bucket, width, with_sampling):
    ids, positions, meta, sampling = step(n, width)
    sampling = sampling if with_sampling else None
    copied, fused = stale(False), stale(True)
    copied.load(ids, positions, meta, bucket, sampling)
    fused.load(ids, positions, meta, bucket, sampling)
    for name, want in tensors(copied, n).items():
        assert torch.equal(tensors(fused, n)[name], want), name
    assert (fused.slot_mapping[n:bucket] == -1).all() and (fused.context_lens[n:bucket] == 0).all()
    if with_sampling:
        assert (fused.temperatures[n:bucket] == 0).all()  # padding rows draw nothing


def test_rows_beyond_the_bucket_and_the_width_are_left_alone():
    static = stale(True)
    before = {name: t.clone() for name, t in tensors(static, MAX_BATCH).items()}
    ids, positions, meta, _ = step(5, 3)
    static.load(ids, positions, meta, 8)
    assert torch.equal(static.slot_mapping[8:], before["slot_mapping"][8:])
    assert torch.equal(static.context_lens[8:], before["context_lens"][8:])
    assert torch.equal(static.block_tables[:, 3:], before["block_tables"][:, 3:])
    assert torch.equal(static.block_tables[5:], before["block_tables"][5:])
    assert torch.equal(static.temperatures, before["temperatures"])  # no sampling given
    assert torch.equal(static.seed, before["seed"])


def test_warm_up_loads_the_first_row_onto_itself():
    static = stale(True)
    before = {name: t.clone() for name, t in tensors(static, MAX_BATCH).items()}
    static.warm_up(sampling=True)
    for name, want in before.items():
        assert torch.equal(tensors(static, MAX_BATCH)[name], want), name
