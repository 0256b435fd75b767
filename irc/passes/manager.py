"""The pass manager: runs an explicit pipeline, validating the graph after every pass that
changed it (said so, or changed its structure).

Instruments observe the run (print, dump, time, count ops); they live here, never in passes.
"""
from __future__ import annotations

import time
from typing import Iterable

from irc.errors import GraphInvalid
from irc.ir.graph import Graph
from irc.passes.catalog import check_order, get_pass
from irc.passes.registry import PassContext


class Instrument:
    """Hooks called around every pass. Override what you need."""

    def before_pass(self, index: int, name: str, graph: Graph) -> None:  # pragma: no cover
        pass

    def after_pass(self, index: int, name: str, graph: Graph, changed: bool,
                   seconds: float) -> None:  # pragma: no cover
        pass


class PassManager:
    def __init__(self, pipeline: Iterable[str], instruments: Iterable[Instrument] = (),
                 ctx: PassContext | None = None):
        self.pipeline = list(pipeline)
        self.passes = [get_pass(name) for name in self.pipeline]  # unknown names fail here
        check_order(self.pipeline)  # and so does a pass placed before one it requires
        self.instruments = list(instruments)
        self.ctx = ctx or PassContext()
        self.changed: list[str] = []

    def run(self, graph: Graph) -> Graph:
        graph.validate()
        for index, p in enumerate(self.passes):
            for inst in self.instruments:
                inst.before_pass(index, p.name, graph)
            self.ctx.current_pass = p.name
            version = graph.version
            start = time.perf_counter()
            changed = p.run(graph, self.ctx)
            seconds = time.perf_counter() - start
            try:
                # A pass that says it changed nothing, and made no structural change through
                # the Graph API, leaves the graph valid: validating again would only cost time.
                if changed or graph.version != version:
                    graph.validate()
            except GraphInvalid as exc:
                raise GraphInvalid(f"pass {p.name!r} left an invalid graph: {exc.message}",
                                   hint="this is a bug in irc; please report it with the model"
                                   ) from None
            if changed:
                self.changed.append(p.name)
            for inst in self.instruments:
                inst.after_pass(index, p.name, graph, changed, seconds)
        return graph
