"""Layout chains: the Transpose/Reshape/Flatten/Squeeze/Unsqueeze runs tf2onnx leaves where
Keras's channels-last layout shows (Flatten, Reshape, 4-D outputs), collapsed into what irc
and Viya express.

A chain moves data only, so its effect is found exactly by pushing labelled elements
(0, 1, 2, ... over one example of its source) through it. The chain then becomes:

- a Flatten of the source, when the labels come out in C,H,W order;
- Transpose(0,2,3,1) -> Flatten, when they come out in H,W,C order (a Keras Flatten: irc's
  flatten_transpose_into_dense pass permutes the next Dense's rows, traps 6/7);
- a Reshape of the source to the chain's (N, C, H, W) shape when the labels are unmoved (Viya's
  reshape reinterprets the C,H,W buffer), or nothing when the shape is also unchanged;
- otherwise a problem: Viya has no layer that moves elements that way.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from onnx import helper

TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]
LAYOUT_OPS = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
_MAX_LABELS = 1 << 24


def outputs_to_nchw(g) -> None:
    """A Transpose to N,C,H,W after every 4-D graph output (Keras outputs are N,H,W,C)."""
    for out in g.g.output:
        if len(out.type.tensor_type.shape.dim) != 4:
            continue
        nchw = g.fresh(out.name + "_nchw")
        g.g.node.append(helper.make_node("Transpose", [out.name], [nchw], perm=TO_NCHW,
                                         name=nchw))
        out.name = nchw


def _maps(g):
    producers = {o: n for n in g.g.node for o in n.output}
    consumers = defaultdict(list)
    for n in g.g.node:
        for i in n.input:
            consumers[i].append(n)
    return producers, consumers


def _apply(g, node, arr):
    """``node`` applied to one example ``arr`` (batch axis of size 1), or None if unknown."""
    op = node.op_type
    if op == "Identity":
        return arr
    if op == "Transpose":
        perm = list(g.attr(node, "perm", list(range(arr.ndim))[::-1]))
        return arr.transpose(perm) if perm and perm[0] == 0 else None
    if op == "Flatten":
        return arr.reshape(1, -1) if g.attr(node, "axis", 1) == 1 else None
    if op == "Reshape":
        target = g.const(node.input[1])
        if target is None or target.ndim != 1 or int(target[0]) not in (0, -1):
            return None
        dims = [arr.shape[i] if d == 0 else int(d) for i, d in enumerate(target)]
        dims[0] = 1
        try:
            return arr.reshape(dims)
        except ValueError:
            return None
    axes = g.attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = g.const(node.input[1])
    if axes is None:
        if op == "Unsqueeze":
            return None
        return arr.reshape([1] + [d for d in arr.shape[1:] if d != 1])
    axes = sorted(int(a) % (arr.ndim + (len(axes) if op == "Unsqueeze" else 0))
                  for a in np.asarray(axes).reshape(-1))
    if 0 in axes:
        return None
    return np.squeeze(arr, tuple(axes)) if op == "Squeeze" else np.expand_dims(arr, tuple(axes))


def is_data(shapes, value) -> bool:
    shape = shapes.get(value)
    return shape is not None and len(shape) >= 2 and shape[0] is None and None not in shape[1:]


def collapse_layout_chains(g, problems: list[str]) -> None:
    shapes = g.shapes()
    outputs = {o.name for o in g.g.output}
    _, consumers = _maps(g)
    ends = [n.output[0] for n in g.g.node
            if n.op_type in LAYOUT_OPS and is_data(shapes, n.output[0])
            and (n.output[0] in outputs or any(r.op_type not in LAYOUT_OPS
                                               for r in consumers[n.output[0]]))]
    for end in ends:
        producers, _ = _maps(g)
        chain, value = [], end
        while value in producers and producers[value].op_type in LAYOUT_OPS \
                and is_data(shapes, producers[value].input[0]):
            chain.append(producers[value])
            value = producers[value].input[0]
        source = value
        if not chain or not is_data(shapes, source) or math.prod(shapes[source][1:]) > _MAX_LABELS:
            continue
        labels = np.arange(math.prod(shapes[source][1:])).reshape((1,) + shapes[source][1:])
        result = labels
        for node in reversed(chain):
            result = _apply(g, node, result)
            if result is None:
                break
        if result is None:
            continue  # irc's frontend reports what it cannot take
        _replace_chain(g, chain[0], source, labels, result, problems)
        shapes = g.shapes()  # new intermediate values


def _replace_chain(g, last, source, labels, result, problems) -> None:
    end, flat = last.output[0], result.reshape(-1)
    unmoved = np.array_equal(flat, np.arange(flat.size))
    if result.ndim == 2 and unmoved:
        g.replace(last, [helper.make_node("Flatten", [source], [end], axis=1, name=last.name)])
    elif result.ndim == 2 and labels.ndim == 4 and \
            np.array_equal(flat, labels.transpose(TO_NHWC).reshape(-1)):
        nhwc = g.fresh(source + "_nhwc")
        g.replace(last, [helper.make_node("Transpose", [source], [nhwc], perm=TO_NHWC,
                                          name=nhwc),
                         helper.make_node("Flatten", [nhwc], [end], axis=1, name=last.name)])
    elif result.ndim in (2, 4) and unmoved and result.shape == labels.shape:
        if g.producer(source) is None and end in {o.name for o in g.g.output}:
            g.replace(last, [helper.make_node("Identity", [source], [end], name=last.name)])
        else:
            g.g.node.remove(last)
            g.rewire(end, source)
    elif result.ndim == 4 and unmoved:
        shape = g.add_init("shape", np.array((0,) + result.shape[1:], np.int64))
        g.replace(last, [helper.make_node("Reshape", [source, shape], [end], name=last.name)])
    else:
        problems.append(f"{last.name}: data of shape {tuple(labels.shape[1:])} (N,C,H,W) "
                        f"rearranged to {tuple(result.shape[1:])} in a way no Viya layer "
                        "computes (a Keras Reshape/Permute that changes the element order "
                        "between Keras's H,W,C and Viya's C,H,W layouts)")


def concat_vectors_as_channels(g) -> None:
    """Concat of vectors that are each a Flatten of an (N, C, 1, 1) map -> a channel Concat of
    the maps, then one Flatten (Viya concatenates layers, not flattened vectors)."""
    shapes = None
    for node in list(g.g.node):
        if node.op_type != "Concat" or g.attr(node, "axis") not in (1, -1):
            continue
        flats = [g.producer(i) for i in node.input]
        if not all(f is not None and f.op_type == "Flatten" for f in flats):
            continue
        shapes = shapes or g.shapes()
        sources = [f.input[0] for f in flats]
        if not all(len(shapes.get(s) or ()) == 4 and shapes[s][2:] == (1, 1) for s in sources):
            continue
        maps = g.fresh(node.output[0] + "_maps")
        g.replace(node, [helper.make_node("Concat", sources, [maps], axis=1, name=node.name),
                         helper.make_node("Flatten", [maps], [node.output[0]], axis=1,
                                          name=node.name + "_flatten")])
        shapes = None
