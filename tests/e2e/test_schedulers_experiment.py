"""The schedulers experiment (continuous vs mixed under each policy): it sweeps what it says, and one
of its points runs for real (tiny model, CPU): its record names the scheduler and policy, its trace
holds mixed steps, and the kinds' times add up to the steps' time."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from repo_paths import ROOT as REPO_ROOT

from allmos.cli.schema import register_schemas

ROOT = Path(REPO_ROOT)
POLICIES = ("fcfs", "priority", "sjf")


@pytest.fixture(autouse=True)
def setup(monkeypatch):
    register_schemas()
    monkeypatch.setenv("ALLMOS_ROOT", str(ROOT))  # what run.py sets; the search path reads it


def composed(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def test_it_sweeps_each_policy_over_both_schedulers_at_one_budget():
    params = OmegaConf.to_container(composed("+experiment=schedulers", hydra=True).hydra.sweeper.params)
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    assert len(jobs) == 18 and [job[:2] for job in jobs[::3]] == [
        [f"scheduler={s}", f"scheduler.policy={p}"] for s in ("continuous", "mixed") for p in POLICIES
    ]
    for scheduler in ("continuous", "mixed"):
        for policy in POLICIES:
            cfg = composed("+experiment=schedulers", f"scheduler={scheduler}", f"scheduler.policy={policy}")
            assert (cfg.scheduler.name, cfg.scheduler.policy) == (scheduler, policy)
            assert cfg.chunked_prefill and cfg.max_num_batched_tokens == 2048


def test_a_mixed_point_runs_and_its_step_kinds_add_up(tmp_path):
    env = dict(os.environ, ALLMOS_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", ALLMOS_ROOT=str(ROOT))
    # the smoke workload's prompts run beside decodes under a 16-token budget
    point = ["+experiment=schedulers", "scheduler=mixed", "scheduler.policy=sjf", "max_num_batched_tokens=16"]
    tiny = ["model=qwen3-tiny", "workload=smoke", "device=cpu", "num_kv_blocks=16", "attention=sdpa"]
    job = tmp_path / "job"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            *tiny,
            "kv_store=torch",
            "compile=false",
            *point,
            f"hydra.run.dir={job}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((job / "result.json").read_text())
    assert record["status"] == "ok" and record["correctness"]["verdict"] == "pass"
    assert (record["switches"]["scheduler"], record["switches"]["scheduler.policy"]) == ("mixed", "sjf")
    with open(job / "trace.csv") as f:
        steps = list(csv.DictReader(f))
    m = record["metrics"]
    assert m["num_mixed_steps"] == sum(row["kind"] == "mixed" for row in steps) > 0
    parts = m["prefill_s"] + m["decode_s"] + m["mixed_s"]  # the kinds' times add up to the steps' time
    assert parts == pytest.approx(sum(float(row["step_ms"]) for row in steps) / 1e3)
    assert f"mixed {m['mixed_s']:.2f} s" in proc.stdout + proc.stderr  # the summary names them
