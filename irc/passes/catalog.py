"""Every registered pass, looked up by name.

Importing this module imports irc.passes.defs, whose modules register themselves with
irc.passes.registry; the registry never imports them back, so there is no import circle.
"""
from __future__ import annotations

from irc.passes import defs  # noqa: F401  (registers every pass)
from irc.passes.registry import PASSES, Pass


def load_all() -> dict[str, type[Pass]]:
    """The registry, every pass module imported."""
    return PASSES


def get_pass(name: str) -> Pass:
    if name not in PASSES:
        raise KeyError(f"no pass named {name!r}; known: {', '.join(sorted(PASSES))}")
    return PASSES[name]()


def check_order(pipeline: list[str]) -> None:
    """Raise ValueError when a pass in ``pipeline`` runs before (or without) one it requires."""
    for index, name in enumerate(pipeline):
        for needed in get_pass(name).requires:
            if needed not in pipeline[:index]:
                where = ("runs after it" if needed in pipeline else "is not in the pipeline")
                raise ValueError(f"pass {name!r} requires pass {needed!r} to run before it, "
                                 f"but {needed!r} {where}")
