"""Every figure kind, rendered by the report for a 2- and a 12-configuration sweep of its kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_records import SMOKE_SWITCHES, write_job, write_points

from analysis import report

NAMES = ["all_on", "no_attention", "no_kv_store", "no_cuda_graphs", "no_compile", "no_prefix_caching",
         "no_async_scheduling", "no_rope", "no_sampler", "no_linear", "no_pdl", "no_gemm"]  # fmt: skip
MAX_PIXELS = 2400  # 16 inches at 150 dpi: a figure that grows past this is illegible when printed


def points(count: int) -> dict[str, tuple[dict, list[float]]]:
    """``count`` points, each turning one more switch on, three noisy trials each."""
    made = {}
    for index, name in enumerate(NAMES[:count]):
        switches = {**SMOKE_SWITCHES, **{f"opt{i}": i < index for i in range(count)}}
        base = 100.0 + 15 * index
        made[name] = (switches, [base, base * 1.03, base * 0.98])
    return made


def assert_figure(path: Path) -> None:
    assert path.read_bytes()[:4] == b"\x89PNG" and path.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    assert Image.open(path).mode == "P"  # palette colours (analysis.plots.small_png)
    width, height = Image.open(path).size
    assert width <= MAX_PIXELS and height <= MAX_PIXELS and width >= 400, (path.name, width, height)


def report_of(folder: Path) -> Path:
    out = folder.parent / "out"
    assert report.main([str(folder), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("count", [2, 12])
def test_leave_one_out_draws_speedup_bars_not_a_staircase(tmp_path: Path, count: int):
    out = report_of(write_points(tmp_path / "s", points(count), kind="leave_one_out", baseline="all_on"))
    for stem in ("output_tok_s_bars", "output_tok_s_speedup"):
        assert_figure(out / f"{stem}.png")
    assert not list(out.glob("*staircase*")) and not list(out.glob("*vs_parameter*"))


@pytest.mark.parametrize("count", [2, 12])
def test_cumulative_draws_a_staircase(tmp_path: Path, count: int):
    out = report_of(write_points(tmp_path / "s", points(count), kind="cumulative", baseline="all_on"))
    assert_figure(out / "output_tok_s_staircase.png")
    assert_figure(out / "output_tok_s_speedup.png")


@pytest.mark.parametrize("count", [2, 12])
def test_sweep_draws_the_metric_against_its_parameter(tmp_path: Path, count: int):
    made, overrides = {}, {}
    for index in range(count):  # 2: batch sizes 1 and 2; 12: six batch sizes x caching off/on
        size, caching = (2**index, False) if count == 2 else (2 ** (index // 2), index % 2 == 1)
        name = f"b{size}-{caching}"
        switches = {**SMOKE_SWITCHES, "prefix_caching": caching, "max_num_seqs": size}
        made[name] = (switches, [10.0 * size * (1.1 if caching else 1.0) + d for d in (0.0, 0.2, -0.1)])
        overrides[name] = f"max_num_seqs={size},prefix_caching={str(caching).lower()}"
    base = "max_num_seqs=1" if count == 2 else "prefix_caching=false"
    folder = write_points(tmp_path / "s", made, kind="sweep", baseline=base, overrides=overrides)
    out = report_of(folder)
    assert_figure(out / "output_tok_s_vs_parameter.png")
    assert_figure(out / "output_tok_s_bars.png")
    assert not list(out.glob("*staircase*"))


@pytest.mark.parametrize("count", [2, 12])
def test_undeclared_kind_draws_bars_only(tmp_path: Path, count: int):
    folder = tmp_path / "s"
    for num, (switches, values) in enumerate(points(count).values()):
        write_job(folder, num, switches, {"output_tok_s": values[0]})
    out = report_of(folder)
    assert_figure(out / "output_tok_s_bars.png")
    assert not list(out.glob("*staircase*")) and "not declared" in (out / "report.md").read_text()


@pytest.mark.parametrize("count", [2, 12])
def test_timelines_have_titles_that_fit(tmp_path: Path, count: int):
    folder = write_points(tmp_path / "s", points(count), kind="leave_one_out", baseline="all_on")
    for job in sorted(folder.iterdir()):
        rows = ["step,kind,batch_size,num_tokens,step_ms"] + [f"{i},decode,4,4,{5 + i / 10}" for i in range(40)]
        (job / "trace.csv").write_text("\n".join(rows) + "\n")
        text = (job / "result.json").read_text().replace('"trace_file": null', '"trace_file": "trace.csv"')
        (job / "result.json").write_text(text)
    out = report_of(folder)
    timelines = sorted(out.glob("timeline_*.png"))
    assert len(timelines) == count
    for path in timelines:
        assert_figure(path)
        width, height = Image.open(path).size
        assert width <= 1200 and width < 2.5 * height  # the 7-inch plot, not its title, sets the size


def test_a_palette_png_keeps_the_picture_in_fewer_bytes(tmp_path: Path):
    from matplotlib.figure import Figure

    from analysis.plots import small_png

    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    ax.barh(["a", "b", "c"], [1.0, 0.5, 0.8], color=["#1f77b4", "#ff7f0e", "#2ca02c"], hatch="//", alpha=0.4)
    ax.set_title("speedup")
    path = tmp_path / "chart.png"
    fig.savefig(path, dpi=150)
    before, rgb = path.stat().st_size, Image.open(path).convert("RGB")
    small_png(path)
    after = Image.open(path)
    assert after.mode == "P" and after.size == rgb.size and path.stat().st_size < 0.7 * before
    error = np.abs(np.asarray(rgb, dtype=int) - np.asarray(after.convert("RGB"), dtype=int))
    assert error.max() <= 4  # the largest colour error of any pixel, out of 255 (measured: 1)
