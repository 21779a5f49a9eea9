"""The report never presents noise as a speedup: intervals, verdicts, noise, A/A, baselines, failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_records import SMOKE_SWITCHES, write_job, write_points

from analysis import report, stats

CACHING = {**SMOKE_SWITCHES, "prefix_caching": True}


def run_report(folder: Path, *args: str) -> tuple[int, str]:
    out = folder.parent / (folder.name + "_report")
    code = report.main([str(folder), "--out", str(out), *args])
    return code, (out / "report.md").read_text()


def table_row(markdown: str, first_cells: str) -> str:
    """The table line whose first cells are ``first_cells`` (``"true | 0.5"``)."""
    wanted = [cell.strip() for cell in first_cells.split("|")]
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("|") and cells[: len(wanted)] == wanted:
            return line
    raise AssertionError(f"no table row starting {first_cells!r}")


def test_switch_without_effect_on_noisy_trials_is_no_speedup(tmp_path: Path):
    """The issue's case: prefix caching on the smoke workload (hit rate 0%), 3 noisy trials each; the
    medians differ by 3x, yet the interval holds 1.0, so nothing is called a speedup."""
    folder = tmp_path / "sweep"
    write_job(folder, 0, SMOKE_SWITCHES, {"output_tok_s": 5.44}, trial=0)
    values = [(CACHING, 17.9), (SMOKE_SWITCHES, 1.58), (CACHING, 5.2), (SMOKE_SWITCHES, 3.1), (CACHING, 1.9)]
    for num, (switches, value) in enumerate(values, start=1):
        write_job(folder, num, switches, {"output_tok_s": value, "prefix_hit_rate": 0.0}, trial=num // 2)
    code, markdown = run_report(folder, "--baseline", "prefix_caching=false")
    row = table_row(markdown, "true")
    assert code == 0
    assert "1.68x" in row and "no difference" in row and "**" not in row and "*" not in row.split("|")[-4]
    assert "noisy" in row and "noisy (CV > 5%)" in markdown
    assert "Welch t interval" in markdown and "successful trials per configuration: 3" in markdown


def test_a_clear_effect_is_significant_and_bold(tmp_path: Path):
    folder = write_points(tmp_path / "s", {"off": (SMOKE_SWITCHES, [10, 10.2, 9.9]), "on": (CACHING, [20, 20.5, 19.8])})
    code, markdown = run_report(folder, "--baseline", "off")
    row = table_row(markdown, "on")
    assert code == 0 and "**2.00x**" in row and "faster*" in row and "prefix_caching=true" in row


def test_fewer_than_three_trials_are_shown_without_spread_never_bold(tmp_path: Path):
    folder = write_points(tmp_path / "s", {"off": (SMOKE_SWITCHES, [10, 10.1]), "on": (CACHING, [20, 20.2])})
    code, markdown = run_report(folder)
    row = table_row(markdown, "on")
    assert "(no spread)" in row and "**" not in row and "faster" not in row and "no spread (n<3)" in row


def test_lower_is_better_metric_speedup_is_baseline_over_this(tmp_path: Path):
    points = {"off": (SMOKE_SWITCHES, [8.0, 8.1, 7.9]), "on": (CACHING, [4.0, 4.05, 3.95])}
    folder = write_points(tmp_path / "s", points, metric="tpot_ms_median", baseline="off")
    code, markdown = run_report(folder, "--metric", "tpot_ms_median")
    assert code == 0 and "**2.00x**" in table_row(markdown, "on") and "lower is better" in markdown
    assert stats.ratio_interval([4, 4.05, 3.95], [8, 8.1, 7.9], lower_better=True)[0] > 1.0


def test_a_repeated_baseline_point_measures_the_noise_floor(tmp_path: Path):
    points = {"all_on": (CACHING, [10, 10.3, 9.8]), "no_x": (SMOKE_SWITCHES, [7, 7.1, 6.9]),
              "all_on_again": (CACHING, [10.1, 9.9, 10.2])}  # fmt: skip
    folder = write_points(tmp_path / "s", points, baseline="all_on")
    code, markdown = run_report(folder)
    assert code == 0
    floor = next(line for line in markdown.splitlines() if "A/A noise floor" in line)
    assert "all_on_again vs all_on" in floor and "no difference" in floor and "95% interval [" in floor
    assert "`all_on` (declared by the experiment (all_on))" in markdown
    assert "(same settings)" in table_row(markdown, "all_on_again")


def test_a_baseline_matching_several_configurations_is_refused(tmp_path: Path):
    points = {"all_on": (CACHING, [10]), "no_pdl": ({**CACHING, "attention.pdl": False}, [10]),
              "no_gemm": ({**CACHING, "linear.gemm": False}, [10])}  # fmt: skip
    folder = write_points(tmp_path / "s", points)
    with pytest.raises(SystemExit, match="matches 3 configurations: all_on, no_pdl, no_gemm"):
        report.main([str(folder), "--baseline", "prefix_caching=true,attention=sdpa"])
    code, markdown = run_report(folder, "--baseline", "no_pdl")  # a point name
    assert code == 0 and "baseline: `no_pdl`" in markdown


def test_a_sweep_compares_on_and_off_at_each_share(tmp_path: Path):
    points, overrides = {}, {}
    for share in (0.0, 0.5):
        for caching in (False, True):
            name = f"s{share}-{caching}"
            gain = 1.0 + share * caching
            switches = {**SMOKE_SWITCHES, "prefix_caching": caching, "share": share}
            points[name] = (switches, [10 * gain, 10.1 * gain, 9.9 * gain])
            overrides[name] = f"workload.prefix_share={share},prefix_caching={str(caching).lower()}"
    folder = write_points(tmp_path / "s", points, kind="sweep", baseline="prefix_caching=false", overrides=overrides)
    code, markdown = run_report(folder)
    assert code == 0 and "one per share" in markdown
    assert "1.00x" in table_row(markdown, "true | 0").replace("**", "")
    assert "**1.50x**" in table_row(markdown, "true | 0.5") and "prefix hit rate" in markdown


def test_every_job_failed_still_writes_a_report_and_exits_non_zero(tmp_path: Path):
    folder = tmp_path / "s"
    for num, switches in enumerate([SMOKE_SWITCHES, CACHING]):
        write_job(folder, num, switches, None, status="failed", error="ConfigError: attention: triton on cpu")
    code, markdown = run_report(folder)
    assert code == 1 and "records: 2 (2 failed)" in markdown and "ConfigError: attention: triton on cpu" in markdown


def test_latex_right_aligns_numbers_with_booktabs(tmp_path: Path):
    folder = write_points(tmp_path / "s", {"off": (SMOKE_SWITCHES, [10, 10.2, 9.9]), "on": (CACHING, [20, 20.5, 19.8])})
    run_report(folder, "--baseline", "off")
    latex = (tmp_path / "s_report" / "report.tex").read_text()
    spec = latex.split(r"\begin{tabular}{")[1].split("}")[0]
    assert spec.startswith("ll") and "r" in spec and set(spec) <= {"l", "r"}
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex and r"\textbf{2.00x}" in latex


def test_changes_name_the_plugin_not_its_options(tmp_path: Path):
    triton = {**SMOKE_SWITCHES, "attention": "triton", "attention.pdl": True}
    points = {"base": (SMOKE_SWITCHES, [10, 10, 10]), "triton": (triton, [12, 12, 12]),
              "no_pdl": ({**triton, "attention.pdl": False}, [11, 11, 11])}  # fmt: skip
    folder = write_points(tmp_path / "s", points, baseline="base")
    code, markdown = run_report(folder)
    for point in ("triton", "no_pdl"):
        cells = [cell.strip() for cell in table_row(markdown, point).strip("|").split("|")]
        assert cells[1] == "attention=triton"  # the options come with the plugin


def test_per_groups_the_comparison_and_a_missing_declared_point_falls_back(tmp_path: Path):
    points = {f"{share}-{on}": ({**SMOKE_SWITCHES, "prefix_caching": on, "share": share}, [10 + on, 10 + on, 10 + on])
              for share in (0, 1) for on in (False, True)}  # fmt: skip
    folder = write_points(tmp_path / "s", points, kind="leave_one_out", baseline="all_on")
    with pytest.raises(SystemExit, match="matches 2 configurations"):
        report.main([str(folder), "--baseline", "prefix_caching=false"])
    code, markdown = run_report(folder, "--baseline", "prefix_caching=false", "--per", "share")
    assert code == 0 and "one per share" in markdown and "**1.10x**" in table_row(markdown, "1-True")
    code, markdown = run_report(folder)
    assert code == 0 and "the declared 'all_on' is not in this sweep" in markdown


def test_a_point_that_states_its_reference_is_compared_with_it_in_the_header(tmp_path: Path):
    """kv_cache_fp8_no_register_cap states experiment.compared_with: kv_cache_fp8; the table still compares
    every point with all_on, and the header adds the stated pair's ratio with its interval."""
    points = {"all_on": (SMOKE_SWITCHES, [10, 10.2, 9.9]), "fp8": (CACHING, [20, 20.3, 19.8]),
              "fp8_uncapped": ({**CACHING, "attention": "triton"}, [18, 18.2, 17.9])}  # fmt: skip
    folder = write_points(tmp_path / "s", points, baseline="all_on", compared_with={"fp8_uncapped": "fp8"})
    code, markdown = run_report(folder)
    stated = next(line for line in markdown.splitlines() if "experiment.compared_with" in line)
    assert code == 0 and "fp8_uncapped vs fp8: 0.900x" in stated and "slower" in stated
    assert "**1.80x**" in table_row(markdown, "fp8_uncapped")  # the table's baseline is still all_on


def test_without_a_stated_reference_the_header_has_no_such_line(tmp_path: Path):
    points = {"off": (SMOKE_SWITCHES, [10, 10.2, 9.9]), "on": (CACHING, [20, 20.5, 19.8])}
    code, markdown = run_report(write_points(tmp_path / "s", points, baseline="off"))
    assert code == 0 and "compared_with" not in markdown
