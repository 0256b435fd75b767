"""Activation passes: fuse into the producing layer, move across max pooling, or carry.

Viya applies a layer's `act` after its linear/normalising part; pooling has none. Every
activation must end on a layer, never be dropped (traps 10-12).
"""
from __future__ import annotations

import numpy as np

from irc.ir.activations import ACTIVATION_OPS, default_alpha
from irc.passes.defs._match import CARRIERS, has_identity_act, single_use_producer
from irc.passes.registry import RewritePass, register_pass


def _act_attrs(node) -> dict:
    act = ACTIVATION_OPS[node.op_type]
    alpha = float(node.attrs.get("alpha", default_alpha(act)))
    return {"activation": act, "activation_alpha": alpha}


def _apply(graph, act_node, carrier, pass_name) -> None:
    """``carrier`` applies ``act_node``'s activation from now on (it records where it came)."""
    for key, value in _act_attrs(act_node).items():
        graph.set_attr(carrier, key, value)
    carrier.provenance = carrier.provenance.merged(act_node.provenance, pass_name)


@register_pass
class FuseActivation(RewritePass):
    """Fuse an activation op into the layer that produces its input.

    Given:  %y = Conv(%x, $w, $b); %z = Relu(%y)
    Result: %z = Conv(%x, $w, $b) {activation=relu}
    Refuses when the producer already has an activation or its output has other readers.
    """

    name = "fuse_activation"
    requires = ("fold_batchnorm",)
    anchors = tuple(ACTIVATION_OPS)

    def rewrite(self, graph, node, ctx):
        producer = graph.producer(node.inputs[0])
        if producer is None or producer.op_type not in CARRIERS:
            return None
        if not has_identity_act(producer):
            return f"producer {producer.name} already applies {producer.attrs['activation']}"
        if single_use_producer(graph, node.inputs[0]) is None:
            return f"the output of {producer.name} has other readers"
        _apply(graph, node, producer, self.name)
        # The name survives: it may be a graph output, and name_map speaks of source names.
        graph.replace_node(node, producer.outputs[0])
        return True


@register_pass
class MoveActivationBeforeMaxPool(RewritePass):
    """Move a monotonic activation after a max pool onto the layer before the pool.

    Given:  %y = Conv(%x) ; %p = MaxPool(%y) ; %z = Relu(%p)
    Result: %y = Conv(%x) {activation=relu} ; %z = MaxPool(%y)
    Exact because max(f(a), f(b)) = f(max(a, b)) for non-decreasing f, and every activation
    Viya offers besides softmax is non-decreasing.
    """

    name = "move_activation_before_maxpool"
    anchors = tuple(ACTIVATION_OPS)

    def rewrite(self, graph, node, ctx):
        pool = single_use_producer(graph, node.inputs[0])
        if pool is None or pool.op_type not in ("MaxPool", "GlobalMaxPool"):
            return None
        producer = single_use_producer(graph, pool.inputs[0])
        if producer is None or producer.op_type not in CARRIERS or not has_identity_act(producer):
            return ("the layer before the max pool cannot take the activation (not a carrier, "
                    "has its own activation, or has other readers)")
        _apply(graph, node, producer, self.name)
        graph.replace_node(node, pool.outputs[0])
        return True


@register_pass
class InsertActivationCarrier(RewritePass):
    """Put every activation still standing alone on an identity batchnorm layer.

    Given:  %p = AveragePool(%y) ; %z = Sigmoid(%p)
    Result: %z = BatchNormalization(%p, 1, 0, 0, 1) {epsilon=0, activation=sigmoid}
    Viya has no standalone activation layer; a batchnorm with gamma 1, beta 0, mean 0 and
    variance 1 computes the identity and carries any activation.
    """

    name = "insert_activation_carrier"
    requires = ("fuse_activation", "move_activation_before_maxpool")
    anchors = tuple(ACTIVATION_OPS)

    def rewrite(self, graph, node, ctx):
        ttype = graph.value(node.inputs[0]).type
        if ttype.rank not in (2, 4):
            return f"input rank {ttype.rank}: a batchnorm carrier needs 2-D or 4-D"
        channels = ttype.shape[1]
        ones = graph.add_const(f"{node.name}_one", np.ones(channels, np.float32)).name
        zeros = graph.add_const(f"{node.name}_zero", np.zeros(channels, np.float32)).name
        carrier = graph.add_node(
            "BatchNormalization", [node.inputs[0], ones, zeros, zeros, ones],
            [(graph.unique_value_name(node.outputs[0] + "_bn"), ttype)],
            {"epsilon": 0.0, **_act_attrs(node)}, name=f"{node.name}_carrier",
            provenance=node.provenance.merged(node.provenance, self.name))
        graph.replace_node(node, carrier.outputs[0])
        return True
