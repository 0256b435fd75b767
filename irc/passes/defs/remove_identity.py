"""remove_identity_dropout: Identity and inference-mode Dropout compute nothing."""
from __future__ import annotations

from irc.passes.defs._match import remove_noop
from irc.passes.registry import RewritePass, register_pass


@register_pass
class RemoveIdentityDropout(RewritePass):
    """Remove Identity and Dropout ops; their readers read the op's input.

    Given:  %y = Dropout(%x); %z = Gemm(%y, ...)
    Result: %z = Gemm(%x, ...)
    Dropout rates are never carried into Viya (its scoring may rescale by 1 - rate). A graph
    output keeps its name: the producer of the input takes it over.
    """

    name = "remove_identity_dropout"
    anchors = ("Identity", "Dropout")

    def rewrite(self, graph, node, ctx):
        return remove_noop(graph, node) or (
            "its output is a graph output and its input is a graph input, a constant or read "
            "elsewhere, so the output name cannot move")
