"""Viya layer names: non-empty, lower-case ``[a-z0-9_]+``, unique, the same in every artifact.

The server lower-cases names in its model table and HDF5 paths split at ``/`` (trap 33), so a
source name like ``/features/Conv`` becomes ``features_conv``.
"""
from __future__ import annotations

import re

MAX_NAME_LENGTH = 64  # long ONNX names are paths; keep table keys readable


def sanitize(name: str, fallback: str = "layer") -> str:
    text = re.sub(r"[^a-z0-9_]+", "_", name.lower())
    text = re.sub(r"_+", "_", text).strip("_")
    if not text:
        text = fallback
    if text[0].isdigit():
        text = f"l_{text}"
    return text[:MAX_NAME_LENGTH].rstrip("_") or fallback


class NameTable:
    """Hands out unique sanitised names and remembers where each came from."""

    def __init__(self, reserved: tuple[str, ...] = ()):
        self._used: set[str] = set(reserved)

    def claim(self, source_name: str, fallback: str) -> str:
        base = sanitize(source_name, fallback)
        name, n = base, 1
        while name in self._used:
            n += 1
            suffix = f"_{n}"
            name = base[:MAX_NAME_LENGTH - len(suffix)] + suffix
        self._used.add(name)
        return name
