"""The lowering registry: which function turns an IR op into Viya layers.

One entry per (IR op type, what it reads). Most ops read ordinary tensors; after a
same-length recurrent layer, the ops reading a per-time-step sequence or a recurrent final
state lower differently (viya-semantics.md §13), so they register under ``SEQUENCE`` or
``STATE``. ``ANY`` handlers (the recurrent ops) are found whatever they read and check their
inputs themselves.

This module imports no handler: the modules that fill it register on import and the driver
(:mod:`irc.backends.viya.lowering.driver`) imports them, so there is no import circle.
"""
from __future__ import annotations

from typing import Callable

TENSOR = "tensor"      # reads ordinary (N, C, H, W) or (N, d) tensors
SEQUENCE = "sequence"  # reads a per-time-step sequence (a same-length recurrent output)
STATE = "state"        # reshapes a recurrent layer's final state (Y_h)
ANY = "any"            # found whatever it reads; checks its own inputs

READS = (TENSOR, SEQUENCE, STATE, ANY)

Handler = Callable  # (ctx: LoweringContext, node: Node) -> None; problems go to ctx.problem
Hook = Callable     # (ctx: LoweringContext) -> None


class LoweringRegistry:
    def __init__(self):
        self._handlers: dict[tuple[str, str], Handler] = {}
        self.emitted: set[str] = set()    # Viya kinds some handler emits (the kind walk checks)
        self._hooks: dict[str, list[tuple[int, Hook]]] = {"before": [], "after": []}

    def register(self, *op_types: str, reads: str = TENSOR, emits: tuple[str, ...] = ()):
        """Decorator: ``fn(ctx, node)`` lowers each of ``op_types`` when it reads ``reads``,
        emitting layers of the Viya kinds ``emits``."""
        if reads not in READS:
            raise ValueError(f"reads must be one of {READS}, not {reads!r}")
        self.emits(*emits)

        def decorate(fn: Handler) -> Handler:
            for op_type in op_types:
                key = (op_type, reads)
                if key in self._handlers:
                    raise AssertionError(f"two lowerings for {op_type} reading {reads}")
                self._handlers[key] = fn
            return fn
        return decorate

    def emits(self, *kinds: str) -> None:
        """Declare Viya kinds a lowering module emits outside a registered handler."""
        self.emitted.update(kinds)

    def hook(self, when: str, order: int):
        """Decorator: ``fn(ctx)`` runs once ``"before"`` or ``"after"`` the node walk, hooks of
        one kind by ascending ``order``. A family keeps what its hooks and handlers share in its
        own object (``ctx.family``), so a new family edits neither the driver nor the context."""
        if when not in self._hooks:
            raise ValueError(f"when must be 'before' or 'after', not {when!r}")

        def decorate(fn: Hook) -> Hook:
            self._hooks[when].append((order, fn))
            return fn
        return decorate

    def hooks(self, when: str) -> list[Hook]:
        return [fn for _, fn in sorted(self._hooks[when], key=lambda item: item[0])]

    def get(self, op_type: str, reads: str = TENSOR) -> Handler | None:
        return self._handlers.get((op_type, reads))

    def op_types(self, reads: str = TENSOR) -> list[str]:
        return sorted(op for op, r in self._handlers if r == reads)


LOWERINGS = LoweringRegistry()
