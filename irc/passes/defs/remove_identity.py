"""remove_identity_dropout: Identity and inference-mode Dropout compute nothing."""
from __future__ import annotations

from irc.passes.defs._match import bypass
from irc.passes.registry import Pass, register_pass


@register_pass
class RemoveIdentityDropout(Pass):
    """Remove Identity and Dropout ops; their readers read the op's input.

    Given:  %y = Dropout(%x); %z = Gemm(%y, ...)
    Result: %z = Gemm(%x, ...)
    Dropout rates are never carried into Viya (its scoring may rescale by 1 - rate).
    """

    name = "remove_identity_dropout"

    def run(self, graph, ctx):
        changed = False
        for node in graph.nodes():
            if node.op_type not in ("Identity", "Dropout"):
                continue
            src, out = node.inputs[0], node.outputs[0]
            if out in graph.outputs and (src in graph.inputs or src in graph.outputs
                                         or graph.is_const(src)):
                # The output name must survive and nothing else can carry it.
                ctx.refuse(node, "its output is a graph output fed directly by an input, "
                                 "a constant or another output")
                continue
            bypass(graph, node)
            changed = True
        return changed
