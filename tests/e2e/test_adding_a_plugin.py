"""README's "Adding a plugin" walk-through, run as written: in a copy of the repository, its `.py` goes
into allmos/attention/ and its `.yaml` into conf/attention/, nothing else changes, and `python run.py
attention=<name>` runs the new backend end to end on the CPU."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from repo_paths import ROOT

COPIED = ("allmos", "conf", "experiments", "run.py", "pyproject.toml")


def walk_through() -> dict[str, str]:
    """The files of README's walk-through: each fenced block whose first line is `# <path>`."""
    readme = Path(ROOT, "README.md").read_text()
    section = readme.split("### Adding a plugin", 1)[1].split("\n## ", 1)[0]
    files = {}
    for body in re.findall(r"```(?:python|yaml)\n(.*?)```", section, re.S):
        first, rest = body.split("\n", 1)
        if first.startswith("# "):
            files[first[2:].strip()] = rest
    return files


def copy_repository(dest) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in COPIED:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, dest / name, ignore=ignore)
        elif os.path.exists(src):
            shutil.copy2(src, dest / name)


def test_the_readme_walk_through_adds_a_backend_with_one_py_and_one_yaml(tmp_path):
    files = walk_through()
    assert sorted(files) == ["allmos/attention/sdpa_math.py", "conf/attention/sdpa_math.yaml"]
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_repository(repo)
    for path, text in files.items():
        assert not (repo / path).exists()
        (repo / path).write_text(text)
    args = [
        sys.executable,
        "run.py",
        "attention=sdpa_math",
        "attention.math_only=true",
        "model=qwen3-tiny",
        "workload=smoke",
        "workload.num_requests=2",
        "device=cpu",
        f"hydra.run.dir={tmp_path}/run",
    ]
    env = dict(os.environ, ALLMOS_CACHE=str(tmp_path / "cache"), ALLMOS_ROOT=str(repo))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["status"] == "ok"
    assert record["counters"]["attention_backend"] == "sdpa_math"
    assert record["switches"]["attention"] == "sdpa_math" and record["switches"]["attention.math_only"] is True
    assert record["correctness"]["passed"]
