"""remove_dead_nodes: ops whose results nobody reads, and constants nobody reads."""
from __future__ import annotations

from irc.passes.registry import Pass, register_pass


@register_pass
class RemoveDeadNodes(Pass):
    """Remove ops none of whose outputs is read or is a graph output, then unused constants."""

    name = "remove_dead_nodes"

    def run(self, graph, ctx):
        changed = False
        # Reverse topological order removes whole dead chains in one sweep.
        for node in reversed(graph.nodes()):
            if all(graph.use_count(out) == 0 for out in node.outputs):
                graph.remove_node(node)
                changed = True
        return graph.remove_unused_values() > 0 or changed
