"""Named experiments (experiments/): they compose, sweep for real on CPU, report, and resume.

Real sweeps run the tiny random Qwen3 on the smoke workload (`device=cpu`), so the whole file takes
well under two minutes on two cores. Subprocesses get their own ALLMOS_CACHE (probe references) and
one OpenMP thread (tiny matmuls only lose from more, and lose a lot when the cores are busy).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from ablation_points import COMPARED_WITH, CUMULATIVE, LEAVE_ONE_OUT, switches
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from repo_paths import ROOT as REPO_ROOT

from allmos.bench.probe import is_reference_configuration
from allmos.cli.schema import register_schemas

ROOT = Path(REPO_ROOT)
EXPERIMENTS = ROOT / "experiments"
NAMES = sorted(p.stem for p in (EXPERIMENTS / "experiment").glob("*.yaml"))
TINY = ["model=qwen3-tiny", "workload=smoke", "device=cpu", "num_kv_blocks=16"]
# Every key run.py's CPU defaults would otherwise add is given, so runs here and on a GPU machine agree.
PINNED = ["attention=sdpa", "kv_store=torch", "compile=false"]
JOBS = {
    "ablation_cumulative": 33,
    "ablation_leave_one_out": 63,
    "attention_backends": 18,
    "prefix_caching": 24,
    "latency": 6,
    "serving_rate_sweep": 96,  # 4 scheduling configurations x 8 request rates x 3 trials
    "schedulers": 18,
}


# --------------------------------------------------------------------------- composition


@pytest.fixture(scope="module", autouse=True)
def schemas():
    register_schemas()


def composed(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def sweep_params(name: str) -> dict[str, str]:
    params = composed(f"+experiment={name}", hydra=True).hydra.sweeper.params
    return {k: str(v) for k, v in OmegaConf.to_container(params).items()}


def grid(name: str, *arguments: str) -> list[list[str]]:
    """The jobs Hydra's basic sweeper launches for `-m +experiment=name arguments...`."""
    params = [f"{k}={v}" for k, v in sweep_params(name).items()] + list(arguments)
    overrides = OverridesParser.create().parse_overrides(params)
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


@pytest.fixture(autouse=True)
def repo_root_env(monkeypatch):
    monkeypatch.setenv("ALLMOS_ROOT", str(ROOT))  # what run.py sets; the search path reads it


def test_every_experiment_is_listed():
    assert sorted(JOBS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_experiment_composes_with_every_swept_value(name):
    params = sweep_params(name)
    assert params["trial"] == "0,1,2", "repeated trials by default, each in its own job folder"
    assert len(grid(name)) == JOBS[name]
    for key, values in params.items():
        for value in values.split(","):
            assert composed(f"+experiment={name}", f"{key}={value}").mode == "bench"
    assert composed(f"+experiment={name}", hydra=True).hydra.sweep.dir.startswith(f"multirun/{name}/")


def test_a_point_states_the_point_it_is_compared_with_for_the_report():
    """experiment.compared_with reaches each job's config (the report gives that pair's ratio) and names a
    point of the same sweep; the experiment's own baseline stays all_on."""
    for stage in LEAVE_ONE_OUT:
        cfg = composed("+experiment=ablation_leave_one_out", f"+leave_one_out={stage}")
        assert cfg.experiment.compared_with == COMPARED_WITH.get(stage) and cfg.experiment.baseline == "all_on"
    assert set(COMPARED_WITH.values()) <= set(LEAVE_ONE_OUT)


@pytest.mark.parametrize("group,stages", [("ablation", CUMULATIVE), ("leave_one_out", LEAVE_ONE_OUT)])
def test_ablation_stages_set_every_switch_over_config_yaml(group, stages):
    experiment = {"ablation": "ablation_cumulative", "leave_one_out": "ablation_leave_one_out"}[group]
    assert sweep_params(experiment)[f"+{group}"].split(",") == list(stages)  # the stated order
    assert sorted(stages) == sorted(p.stem for p in (EXPERIMENTS / group).glob("*.yaml"))
    for stage, expected in stages.items():
        assert switches(composed(f"+experiment={experiment}", f"+{group}={stage}")) == expected
    reference = next(iter(stages.values()))
    for (_, before), (name, now) in itertools.pairwise(stages.items()):
        if group == "leave_one_out":
            before = stages[COMPARED_WITH[name]] if name in COMPARED_WITH else reference
        changed = sum(a != b for a, b in zip(now, before))
        assert changed == (0 if name == "all_on_again" else 1), (before, now)
    # A switch given on the command line still wins over the stage's value.
    assert composed(f"+{group}={list(stages)[-1]}", "cuda_graphs=false").cuda_graphs is False


def test_experiment_workloads():
    cfg = composed("+experiment=prefix_caching", "workload.prefix_share=0.25")
    w = cfg.workload
    assert (w.kind, w.prefix_len, w.prefix_share, w.name) == ("shared_prefix", 512, 0.25, "shared_prefix-share0.25")
    assert (w.input_len_min, w.input_len_max, w.output_len_min, w.output_len_max) == (32, 128, 64, 128)
    assert w.ignore_eos and w.temperature == 0.6
    w = composed("+experiment=latency").workload
    assert (w.kind, w.concurrency, w.temperature, w.input_len_max, w.output_len_max) == ("latency", 1, 0.0, 128, 256)
    assert [job[:2] for job in grid("attention_backends")][::6] == [  # the baseline first
        ["attention=sdpa", "cuda_graphs=False"],
        ["attention=triton", "cuda_graphs=False"],
        ["attention=flash", "cuda_graphs=False"],
    ]
    assert len(grid("attention_backends", "trial=0")) == 6  # the command line narrows a sweep


def test_paper_script_runs_every_experiment(tmp_path):
    out = tmp_path / "paper"
    proc = subprocess.run(
        ["bash", str(EXPERIMENTS / "paper.sh"), "--dry-run", "--out", str(out), "model=x"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    runs = [line for line in proc.stdout.splitlines() if "run.py -m" in line]
    assert [line.split("+experiment=")[1].split()[0] for line in runs] == [
        "ablation_cumulative",
        "ablation_leave_one_out",
        "attention_backends",
        "prefix_caching",
        "latency",
        "serving_rate_sweep",
        "schedulers",
    ]
    assert sorted(line.split("+experiment=")[1].split()[0] for line in runs) == NAMES
    for name, line in zip(NAMES, sorted(runs, key=lambda run: run.split("+experiment=")[1])):
        assert f"hydra.sweep.dir={out}/{name}" in line and line.endswith("model=x")
    assert proc.stdout.count("analysis/report.py") == len(NAMES) + 1  # + the latency TPOT report


# --------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("allmos_cache")
    return dict(os.environ, ALLMOS_CACHE=str(cache), OMP_NUM_THREADS="1", ALLMOS_ROOT=str(ROOT))


def run_py(env, *arguments, cwd=ROOT, timeout=300):
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *arguments],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_search_path_works_from_any_directory(env, tmp_path):
    away = dict(env)
    away.pop("ALLMOS_ROOT")  # run.py sets it itself
    info = run_py(away, "--info", "searchpath", cwd=tmp_path)
    assert info.returncode == 0, info.stderr[-2000:]
    assert f"file://{ROOT}/experiments" in info.stdout
    job = run_py(away, "+experiment=prefix_caching", "+ablation=c5_prefix_caching", "--cfg", "all", cwd=tmp_path)
    assert job.returncode == 0, job.stderr[-2000:]
    cfg = OmegaConf.create(job.stdout[job.stdout.index("hydra:") :])
    assert cfg.hydra.sweeper.params["workload.prefix_share"] == "0,0.25,0.5,0.75"
    assert cfg.prefix_caching is True  # from experiments/ablation/ (no CPU default pins it)


def records(folder: Path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in folder.glob("*/result.json")}


def markdown_rows(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def label(record: dict) -> str:
    s = record["switches"]
    return f"cuda_graphs={str(s['cuda_graphs']).lower()} prefix_caching={str(s['prefix_caching']).lower()}"


def test_real_sweep_then_report(env, tmp_path):
    """Default isolation (a worker process per job); failed points are recorded and the sweep goes on."""
    sweep = tmp_path / "sweep"
    proc = run_py(
        env,
        "-m",
        *TINY,
        *PINNED,
        "prefix_caching=false,true",
        "cuda_graphs=false,true",
        "trial=0,1",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # the refused points are failures of the sweep
    assert proc.stderr.strip().splitlines()[-1].startswith("sweep: 4 of 8 jobs failed (4 x ConfigError: cuda_graphs")
    jobs = records(sweep)
    assert sorted(jobs) == list(range(8))
    for record in jobs.values():
        refused = record["switches"]["cuda_graphs"]
        assert record["status"] == ("failed" if refused else "ok"), record.get("error")
        if refused:
            assert "cuda_graphs" in record["error"]
        else:
            reference = json.loads(Path(record["correctness"]["reference"]).read_text())["switches"]
            all_off = is_reference_configuration(record["switches"], reference)
            verdict = ("reference", None) if all_off else ("pass", True)
            assert (record["correctness"]["verdict"], record["correctness"]["passed"]) == verdict
            assert os.path.isfile(sweep / str(record["job"]["num"]) / "trace.csv")
    assert all(
        Path(r["correctness"]["reference"]).is_relative_to(env["ALLMOS_CACHE"])
        for r in jobs.values()
        if r["status"] == "ok"
    )

    report = subprocess.run(
        [sys.executable, "analysis/report.py", str(sweep)],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    table = markdown_rows((sweep / "report" / "report.md").read_text())
    rows = {f"cuda_graphs={row['cuda_graphs']} prefix_caching={row['prefix_caching']}": row for row in table}
    by_config: dict[str, list[float | None]] = {}
    for record in jobs.values():
        value = record["metrics"]["output_tok_s"] if record["status"] == "ok" else None
        by_config.setdefault(label(record), []).append(value)
    assert len(table) == len(rows) == len(by_config) == 4  # one row per configuration
    base = statistics.median(by_config["cuda_graphs=false prefix_caching=false"])
    for config, values in by_config.items():
        row = rows[config]
        assert row["trials"] == ("0/2" if None in values else "2")
        if None in values:
            assert row["output_tok_s (median)"] == "n/a" and row["status"].startswith(
                "failed: ConfigError: cuda_graphs"
            )
            continue
        median = statistics.median(values)
        assert row["output_tok_s (median)"] == format_number(median)
        assert row["speedup"].startswith(f"{median / base:.2f}x") and row["status"] == "ok"
        all_off = [r for r in jobs.values() if label(r) == config and r["correctness"]["verdict"] == "reference"]
        assert row["correct"] in (("n/a", "reference") if all_off else ("pass",))
    assert rows["cuda_graphs=false prefix_caching=false"]["speedup"] == "1.00x (baseline)"
    figures = list((sweep / "report").glob("*.png")) + list((sweep / "report").glob("*.pdf"))
    assert {"output_tok_s_bars.png", "output_tok_s_bars.pdf"} <= {f.name for f in figures}
    assert any(f.name.startswith("timeline_") for f in figures)
    assert all(f.stat().st_size > 1000 for f in figures)
    assert "records: 8 (4 failed)" in (sweep / "report" / "report.md").read_text()


def format_number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def test_resume_reruns_only_missing_or_failed_jobs(env, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY, *PINNED, "cuda_graphs=false", "isolate=false", f"hydra.sweep.dir={sweep}"]
    first = run_py(env, *args, "trial=0,1,2,3")
    assert first.returncode == 0, first.stderr[-3000:]
    assert [r["status"] for _, r in sorted(records(sweep).items())] == ["ok"] * 4
    (sweep / "1" / "result.json").unlink()  # interrupted before its record
    (sweep / "2" / "result.json").write_text('{"schema": 1, "status": "ok", "metr')  # cut off mid-write
    failed = json.loads((sweep / "3" / "result.json").read_text()) | {"status": "failed", "error": "X: y"}
    (sweep / "3" / "result.json").write_text(json.dumps(failed))
    kept = (sweep / "0" / "result.json").read_bytes(), (sweep / "0" / "result.json").stat().st_mtime_ns

    again = run_py(env, *args, "trial=0,1,2,3", "resume=true")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("already has a good record; skipped") == 1
    assert f"resume: {sweep}/0 already has a good record" in again.stdout
    assert ((sweep / "0" / "result.json").read_bytes(), (sweep / "0" / "result.json").stat().st_mtime_ns) == kept
    now = records(sweep)
    assert [now[i]["status"] for i in range(4)] == ["ok"] * 4 and [now[i]["trial"] for i in range(4)] == [0, 1, 2, 3]

    # A changed sweep puts other configurations into the same job numbers: those run again.
    changed = run_py(env, *args, "trial=0,7", "resume=true")
    assert changed.returncode == 0, changed.stderr[-3000:]
    assert f"resume: {sweep}/0 already has a good record" in changed.stdout
    assert f"resume: {sweep}/1 holds a record of another configuration" in changed.stdout
    assert records(sweep)[1]["trial"] == 7


def has_submitit() -> bool:
    try:
        return importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None
    except ModuleNotFoundError:  # no hydra_plugins namespace at all
        return False


@pytest.mark.skipif(not has_submitit(), reason="hydra-submitit-launcher is not installed (optional extra)")
def test_submitit_local_launcher(env, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_py(
        env,
        "-m",
        "hydra/launcher=submitit_local",
        *TINY,
        *PINNED,
        "cuda_graphs=false,true",
        "isolate=false",
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # job 1 is refused: the sweep failed
    assert f"FAILED ({sweep}/1): ConfigError: cuda_graphs" in proc.stderr
    jobs = records(sweep)
    assert [jobs[i]["status"] for i in (0, 1)] == ["ok", "failed"]
