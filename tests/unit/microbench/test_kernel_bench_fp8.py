"""kernel_bench_fp8's launch sweep: every combination of its grid reaches the decode call, beside the default
(the timing itself needs a GPU; here the calls are recorded instead of run)."""

import argparse
import itertools

import pytest
import torch

from allmos.microbench import kernel_bench_fp8


@pytest.fixture
def recorded(monkeypatch):
    launches = []

    def fake_decode_calls(batch, context, kv_cache_dtype, **launch):
        launches.append({"batch": batch, "dtype": kv_cache_dtype, **launch})
        return [], 1000

    monkeypatch.setattr(kernel_bench_fp8, "decode_calls", fake_decode_calls)
    monkeypatch.setattr(kernel_bench_fp8, "graph_ms", lambda calls, num_bytes: 0.5)
    monkeypatch.setattr(kernel_bench_fp8.torch.cuda, "empty_cache", lambda: None)
    return launches


def test_the_sweep_covers_warps_and_splits_beside_the_defaults(recorded):
    grid = {"tiles": [128], "stages": [2, 3], "caps": [0], "warps": [4, 8], "splits": [2]}
    rows = kernel_bench_fp8.sweep_fp8(64, 2048, 2.0, grid)
    # the default tile runs at the default stages only; 128-token tiles at both: 3 tile/stage pairs x 2 caps x 2
    # warps x 2 splits
    assert len(rows) == len(recorded) == 3 * 2 * 2 * 2
    seen = {(r["block_n"], r["num_stages"], r["max_registers"], r["num_warps"], r["num_splits"]) for r in recorded}
    pairs = [(None, None), (128, 2), (128, 3)]
    expected = {(b, s, c, w, p) for (b, s), c, w, p in itertools.product(pairs, [None, 0], [4, 8], [None, 2])}
    assert seen == expected
    assert all(r["dtype"] == "fp8" and r["batch"] == 64 for r in recorded)
    assert {(r["num_warps"], r["num_splits"]) for r in rows} == {(4, "default"), (4, 2), (8, "default"), (8, 2)}
    assert {r["max_registers"] for r in rows} == {"default", "none"}
    assert all(r["share_of_copy"] == pytest.approx(1000 / 0.5e-3 / 1e9 / 2.0) for r in rows)


def test_the_sweep_parses_its_comma_lists():
    assert kernel_bench_fp8._ints("4,8", [4]) == [4, 8]
    assert kernel_bench_fp8._ints(None, [4]) == [4]
    assert kernel_bench_fp8._ints("", [2]) == [2]


def test_the_dim_major_v_variant_is_timed_beside_the_token_major_one(recorded, monkeypatch):
    times = {"auto": 2.0, "fp8": 1.0, "fp8_v_dim_major": 0.8}
    monkeypatch.setattr(kernel_bench_fp8, "graph_ms", lambda calls, num_bytes: times[variant_of(recorded[-1])])
    row = kernel_bench_fp8.bench(16, 2048, 2.0, ("auto", "fp8", "fp8_v_dim_major"))
    assert [variant_of(r) for r in recorded] == ["auto", "fp8", "fp8_v_dim_major"]
    assert row["fp8_speedup"] == 2.0 and row["v_dim_major_speedup"] == pytest.approx(1.25)
    line = kernel_bench_fp8.table_line(row)
    assert line.split()[-1] == "1.25x" and len(line.split()) == 12
    plain = kernel_bench_fp8.bench(16, 2048, 2.0)
    assert "fp8_v_dim_major" not in plain and len(kernel_bench_fp8.table_line(plain).split()) == 8


def test_both_layouts_are_timed_as_their_own_columns(recorded, monkeypatch):
    times = {"auto": 2.0, "fp8": 1.0, "fp8_v_dim_major": 0.8, "fp8_head_major": 0.5}
    monkeypatch.setattr(kernel_bench_fp8, "graph_ms", lambda calls, num_bytes: times[variant_of(recorded[-1])])
    row = kernel_bench_fp8.bench(16, 2048, 2.0, ("auto", "fp8", "fp8_v_dim_major", "fp8_head_major"))
    assert [variant_of(r) for r in recorded] == ["auto", "fp8", "fp8_v_dim_major", "fp8_head_major"]
    assert row["head_major_speedup"] == 2.0 and row["v_dim_major_speedup"] == pytest.approx(1.25)
    words = kernel_bench_fp8.table_line(row).split()
    assert len(words) == 16 and words[11] == "1.25x" and words[15] == "2.00x"


def variant_of(launch: dict) -> str:
    layout = launch.get("layout", "token_major")
    return launch["dtype"] if layout == "token_major" else f"fp8_{layout}"


@pytest.mark.parametrize("layout", ["v_dim_major", "head_major"])
def test_the_sweep_runs_over_the_asked_layout(recorded, layout):
    grid = {"tiles": [64], "stages": [2], "caps": [], "warps": [4], "splits": [2]}
    kernel_bench_fp8.sweep_fp8(16, 2048, 2.0, grid, layout=layout)
    assert len(recorded) == 4 and all(r["layout"] == layout and r["dtype"] == "fp8" for r in recorded)
    kernel_bench_fp8.sweep_fp8(16, 2048, 2.0, grid)
    assert [r["layout"] for r in recorded[4:]] == ["token_major"] * 4


def test_a_sweep_takes_one_layout():
    def args(v_dim_major, head_major):
        return argparse.Namespace(v_dim_major=v_dim_major, head_major=head_major)

    assert kernel_bench_fp8.swept_layout(args(False, False)) == "token_major"
    assert kernel_bench_fp8.swept_layout(args(True, False)) == "v_dim_major"
    assert kernel_bench_fp8.swept_layout(args(False, True)) == "head_major"
    with pytest.raises(SystemExit, match="one page layout"):
        kernel_bench_fp8.swept_layout(args(True, True))


def test_the_layouts_store_the_same_values_in_their_own_order():
    k, v = torch.randn(3, 16, 2, 8), torch.randn(3, 16, 2, 8)
    for layout in kernel_bench_fp8.LAYOUTS:
        k2, v2 = kernel_bench_fp8.laid_out(k, v, layout)
        assert torch.equal(k2, k) and torch.equal(v2, v) and k2.shape == v2.shape == k.shape
    k_hm, v_hm = kernel_bench_fp8.laid_out(k, v, "head_major")
    assert k_hm.stride() == v_hm.stride() == (16 * 2 * 8, 8, 16 * 8, 1)  # a head's page slice is contiguous
    _, v_dm = kernel_bench_fp8.laid_out(k, v, "v_dim_major")
    assert v_dm.stride(1) == 1
    with pytest.raises(ValueError, match="layout must be one of"):
        kernel_bench_fp8.laid_out(k, v, "dim_major")
