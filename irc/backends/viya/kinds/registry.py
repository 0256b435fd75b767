"""The kind registry: addLayer type -> its :class:`~.base.Kind` (filled by the kind modules).

This module imports no kind module: ``catalog.py`` does, and ``schema.py`` imports the catalog.
"""
from __future__ import annotations

KINDS: dict = {}


def register(cls):
    """Class decorator: register one instance of a Kind subclass under its ``name``."""
    kind = cls() if isinstance(cls, type) else cls
    if not kind.name or kind.name in KINDS:
        raise AssertionError(f"kind {kind.name!r} registered twice or without a name")
    KINDS[kind.name] = kind
    return cls
