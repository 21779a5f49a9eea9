"""A cheap fingerprint of a checkpoint's contents: what the probe reference is keyed by.

Per weight file: its name, its size, and a hash of its first and last MiB (a safetensors header
and the tensors at both ends). Any change of shape, dtype, tensor set or file size, and most
in-place edits, change it; reading 2 MiB per file keeps it fast for any model size.
"""

from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20
WEIGHT_SUFFIXES = {"safetensors": (".safetensors",), "pt": (".bin", ".pt", ".pth")}


def weights_fingerprint(folder: str, load_format: str = "safetensors") -> str:
    suffixes = WEIGHT_SUFFIXES.get(load_format, (".safetensors", ".bin", ".pt", ".pth"))
    names = sorted(n for n in os.listdir(folder) if n.endswith(suffixes) or n == "config.json")
    digest = hashlib.sha256()
    for name in names:
        path = os.path.join(folder, name)
        size = os.path.getsize(path)
        digest.update(f"{name}\0{size}\0".encode())
        with open(path, "rb") as f:
            digest.update(f.read(CHUNK))
            if size > CHUNK:
                f.seek(max(CHUNK, size - CHUNK))
                digest.update(f.read(CHUNK))
    return digest.hexdigest()[:16]
