"""The pass registry: every pass is a named, registered unit with one method.

A pass rewrites the graph in place and returns whether it changed anything. It never prints,
times or dumps (instruments on the manager do that). When it declines to rewrite a node it
matched, it says why through ``ctx.refuse`` so `--explain` can show the reason. A pass whose
patterns only hold after other passes ran names them in ``requires``; the pass manager refuses
a pipeline that does not run them earlier (irc.passes.catalog.check_order).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from irc.ir.graph import Graph, Node


@dataclass
class PassContext:
    """Options shared by passes, and the refusals they record."""

    const_fold_max_elements: int = 1 << 22  # 4 Mi elements (16 MB of float32)
    refusals: list[tuple[str, str, str]] = field(default_factory=list)  # (pass, node, reason)
    current_pass: str = ""

    def refuse(self, node: Node | str, reason: str) -> None:
        name = node.name if isinstance(node, Node) else node
        self.refusals.append((self.current_pass, name, reason))


class Pass:
    """Base class. Subclasses set ``name`` and implement :meth:`run`."""

    name: str = ""
    requires: tuple[str, ...] = ()  # passes that must run earlier in the same pipeline

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class RewritePass(Pass):
    """A pass that visits the ops of its ``anchors`` types once each, in topological order, and
    tries :meth:`rewrite` on each: the loop, the skipping of ops an earlier rewrite removed and
    the refusal bookkeeping are written here once.

    ``rewrite(graph, node, ctx)`` returns True when it rewrote the graph, a string when it
    declines a node it matched (the reason, recorded as a refusal of ``node``), and None or
    False when ``node`` is not its pattern at all.
    """

    anchors: tuple[str, ...] | None = ()   # op types the rewrite starts from; None: every op

    def rewrite(self, graph: Graph, node: Node, ctx: PassContext) -> bool | str | None:
        raise NotImplementedError

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in graph.nodes():
            if (self.anchors is not None and node.op_type not in self.anchors) \
                    or not graph.has_node(node.name) \
                    or graph.node(node.name) is not node:
                continue   # another op type, or removed by an earlier rewrite of this sweep
            result = self.rewrite(graph, node, ctx)
            if isinstance(result, str):
                ctx.refuse(node, result)
            elif result:
                changed = True
        return changed


PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    if not cls.name:
        raise RuntimeError(f"{cls.__name__} has no name")
    if cls.name in PASSES:
        raise RuntimeError(f"two passes named {cls.name!r}")
    PASSES[cls.name] = cls
    return cls

