"""The software and hardware a result came from."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess

import torch

PACKAGES = ("torch", "triton", "transformers", "flash-attn", "hydra-core", "numpy", "safetensors", "xxhash")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE_DIRS = ("allmos", "conf")
SOURCE_SUFFIXES = (".py", ".yaml")


def source_hash(root: str = ROOT) -> str:
    """A digest of the code and configs that ran (12 hex digits): provenance that holds where a
    copied tree's git metadata is stale or missing."""
    digest = hashlib.sha256()
    for top in SOURCE_DIRS:
        for folder, dirs, files in sorted(os.walk(os.path.join(root, top))):
            dirs.sort()
            for name in sorted(f for f in files if f.endswith(SOURCE_SUFFIXES)):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()[:12]


def git_commit(root: str = ROOT) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip() if out.returncode == 0 and len(out.stdout.strip()) == 40 else None
    return f"{commit}+dirty" if commit and dirty else commit


def device_name(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


def environment(device: str) -> dict:
    return {
        "git_commit": git_commit(),
        "source_hash": source_hash(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "device_name": device_name(device),
        "num_gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "cuda": torch.version.cuda,
        "host": platform.node(),
    }
