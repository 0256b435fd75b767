"""Module paths on the dynamo route: what leads a Viya layer or a refusal back to the PyTorch
module that computed it (``features.1.block.0``), instead of the exporter's node names
(``node_conv2d_292``, ``n0``).

Two places hold the path:

- torch.export's graph: each call's ``node.meta["nn_module_stack"]`` (innermost module last).
  :func:`refuse_no_viya_form` reads it right after tracing, before the ONNX translation and
  its optimisation (the slow part of an export), and refuses a model calling an op that is an
  element-wise product of two computed tensors wherever it appears (SiLU: x * sigmoid(x)).
- the ONNX the dynamo exporter writes: each node's ``pkg.torch.onnx.name_scopes`` metadata
  (torch 2.14: ``['', 'features', 'features.0', 'features.0.act', 'silu']``: the module
  paths from the root, then the traced call's own name). :func:`name_nodes_by_module` renames
  the nodes after it, so layer names, ``name_map.json`` and every refusal carry the path.
"""
from __future__ import annotations

import ast
from collections import defaultdict

from irc.errors import ViyaCannotExpress

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
CLASS_HIERARCHY = "pkg.torch.onnx.class_hierarchy"

# aten ops whose result is an element-wise product of two computed tensors, which no Viya
# layer computes (its residual layer adds, its activations are fixed functions of one value):
# a model calling one cannot become a Viya model, whatever the exporter makes of it.
# "mul" counts only where both operands depend on the model's input (a squeeze-excitation
# gate); a product with a weight or a constant is a scale irc folds.
NO_VIYA_FORM = {
    "silu": "SiLU/swish, x * sigmoid(x)",
    "hardswish": "hard-swish, x * relu6(x + 3) / 6",
    "mish": "Mish, x * tanh(softplus(x))",
    "gelu": "GELU, x * Phi(x)",
    "mul": "a product of two computed tensors, x * y",
}


def _op_name(target) -> str:
    """'aten.silu.default' / 'aten.silu_.default' -> 'silu'."""
    text = str(target)
    parts = text.split(".")
    name = parts[1] if len(parts) >= 2 and parts[0] == "aten" else ""
    return name.rstrip("_")


def _module_path(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return node.name
    path = list(stack.values())[-1][0]
    return path or node.name


def refuse_no_viya_form(program, label: str) -> None:
    """Raise ViyaCannotExpress when ``program`` (a torch.export ExportedProgram) calls an op
    of :data:`NO_VIYA_FORM`: one line per op, with the module paths calling it."""
    found: dict[str, list[str]] = defaultdict(list)
    user_inputs = set(program.graph_signature.user_inputs)
    computed = set()  # nodes whose value depends on a user input
    for node in program.graph.nodes:
        if (node.op == "placeholder" and node.name in user_inputs) or any(
                arg in computed for arg in node.all_input_nodes):
            computed.add(node)
        if node.op != "call_function":
            continue
        op = _op_name(node.target)
        if op == "mul" and not (len(node.args) == 2 and all(a in computed for a in node.args)):
            continue
        if op in NO_VIYA_FORM:
            path = _module_path(node)
            if path not in found[op]:
                found[op].append(path)
    if not found:
        return
    lines = [f"{NO_VIYA_FORM[op]} x{len(paths)}: {', '.join(paths)}"
             for op, paths in found.items()]
    raise ViyaCannotExpress(
        "the traced model computes element-wise products of two tensors, which no Viya layer "
        "computes (found before the ONNX export):\n  " + "\n  ".join(lines), file=label,
        hint="replace these modules (e.g. SiLU or hard-swish by ReLU) and train again; other "
             "problems, if any, are listed once these are gone")


def _meta_list(node, key: str) -> list[str] | None:
    for prop in node.metadata_props:
        if prop.key == key:
            try:
                value = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            return [str(v) for v in value] if isinstance(value, list) and value else None
    return None


def _is_library_module(node) -> bool:
    """Whether the innermost module is one of torch.nn's own (Conv2d, ReLU, ...), whose one
    call is the module; a call in a user block's forward (ResNet's ``out += identity``) is
    named after the call too, since the block's path alone would name the whole block."""
    classes = _meta_list(node, CLASS_HIERARCHY)
    return bool(classes) and len(classes) >= 2 and classes[-2].startswith("torch.nn.modules.")


def name_nodes_by_module(model) -> int:
    """Rename the top-level nodes of the dynamo exporter's ``model`` (an onnx.ModelProto) after
    the module path that computed each; the number renamed.

    A node reading one ``<path>.weight`` parameter is named by it (``layer1.0.conv1``, even
    where the exporter fused the batch norm after it into the Conv and recorded the batch
    norm's scope). Otherwise a torch.nn module that made one traced call gives its path; one that
    made several, or a call in a user module's own forward, adds the call's name
    (``layer1.0.relu.relu_1``, ``layer1.0.add``); a top-level call keeps its own (``view``).
    When one call became several ONNX nodes (SiLU: Sigmoid and Mul), the last keeps the name
    and the others add their op type. Nodes without the metadata keep their names; every name
    stays unique."""
    nodes = list(model.graph.node)
    scopes = [_meta_list(n, NAME_SCOPES) for n in nodes]
    calls: dict[str, set[str]] = defaultdict(set)
    for s in scopes:
        if s:
            calls[s[-2] if len(s) >= 2 else ""].add(s[-1])
    weights = {t.name for t in model.graph.initializer if t.name.endswith(".weight")}
    bases = []
    for node, s in zip(nodes, scopes):
        owners = [i[:-len(".weight")] for i in node.input if i in weights]
        if len(owners) == 1:  # a weighted node: its parameter's own path (`layer1.0.conv1`),
            bases.append(owners[0])  # also where the exporter fused a batch norm into it
            continue
        if not s:
            bases.append(None)
            continue
        module, call = (s[-2] if len(s) >= 2 else ""), s[-1]
        if not module:
            bases.append(call)
        elif len(calls[module]) == 1 and _is_library_module(node):
            bases.append(module)
        else:
            bases.append(f"{module}.{call}")
    last = {base: i for i, base in enumerate(bases) if base is not None}
    used = {n.name for n, b in zip(nodes, bases) if b is None}
    renamed = 0
    for i, (node, base) in enumerate(zip(nodes, bases)):
        if base is None:
            continue
        name = base if last[base] == i else f"{base}.{node.op_type.lower()}"
        unique, k = name, 1
        while unique in used:
            k += 1
            unique = f"{name}_{k}"
        used.add(unique)
        node.name = unique
        renamed += 1
    return renamed


def class_name(model) -> str | None:
    """The class of an nn.Module, or of the module an ExportedProgram was traced from (its
    graph's root module stack entry): what an in-memory model's Viya model is named after."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.export.ExportedProgram):
        for node in model.graph.nodes:
            for path, cls in (node.meta.get("nn_module_stack") or {}).values():
                if path == "":
                    return str(getattr(cls, "__name__", cls)).rsplit(".", 1)[-1] or None
        return None
    return type(model).__name__ if model is not None else None
