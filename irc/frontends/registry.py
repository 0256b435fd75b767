"""Handler registries: one handler per source op or layer, registered with a decorator.

Every frontend keeps one :class:`HandlerRegistry`. The support table (`irc ops`, README) and the
unsupported-op scan are both generated from it, so what irc claims to support is what it has
code for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def first_paragraph(doc: str | None) -> str:
    """A docstring's first paragraph on one line: the support-table note, whole (a note
    that runs over two source lines must not be cut at the first)."""
    lines = []
    for line in (doc or "").strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


@dataclass(frozen=True)
class Handler:
    op_type: str
    fn: Callable
    note: str  # first paragraph of the handler's docstring: what it maps to


class HandlerRegistry:
    def __init__(self, framework: str):
        self.framework = framework
        self._handlers: dict[str, Handler] = {}

    def register(self, *op_types: str):
        """Decorator: ``@registry.register("Relu", "Sigmoid")``. A duplicate is a bug."""
        def decorate(fn):
            note = first_paragraph(fn.__doc__)
            for op_type in op_types:
                if op_type in self._handlers:
                    raise RuntimeError(f"{self.framework}: two handlers for {op_type!r}")
                self._handlers[op_type] = Handler(op_type, fn, note)
            return fn
        return decorate

    def get(self, op_type: str) -> Handler | None:
        return self._handlers.get(op_type)

    def __contains__(self, op_type: str) -> bool:
        return op_type in self._handlers

    def op_types(self) -> list[str]:
        return sorted(self._handlers)

    def support_table(self) -> list[tuple[str, str]]:
        return [(h.op_type, h.note) for _, h in sorted(self._handlers.items())]

    def unsupported(self, items: list[tuple[str, str]]) -> dict[str, list[str]]:
        """Given (op_type, node_name) pairs, the op types with no handler -> node names."""
        missing: dict[str, list[str]] = {}
        for op_type, node_name in items:
            if op_type not in self._handlers:
                missing.setdefault(op_type, []).append(node_name)
        return missing


def format_unsupported(framework: str, missing: dict[str, list[str]], hint: str) -> str:
    """One message listing every unsupported op type, its count and (some of) its nodes."""
    lines = [f"{sum(len(v) for v in missing.values())} {framework} node(s) of "
             f"{len(missing)} unsupported type(s):"]
    for op_type, names in sorted(missing.items()):
        shown = ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")
        lines.append(f"  {op_type} x{len(names)}: {shown}")
    lines.append(hint)
    return "\n".join(lines)
