"""What a person reads about a compiled model: the layer summary (a DataFrame that every model
has, unlike the materialised model table), its text form, and the notebook display (HTML with
the summary and, where Graphviz's `dot` is installed, the layer graph as SVG)."""
from __future__ import annotations

import html
import shutil

# Graphviz lays out a few hundred boxes in about a second; a notebook cell should not wait
# longer each time a model is shown.
MAX_DRAWN_LAYERS = 400
SUMMARY_COLUMNS = ("name", "kind", "act", "sources", "output shape", "weights",
                   "source nodes")


def _weight_count(layer) -> int:
    count = 0
    for weight in layer.weights.values():
        n = 1
        for d in weight.shape:
            n *= int(d)
        count += n
    return count


def summary_rows(model) -> list[dict]:
    """One dict per layer, in addLayer order, keyed by :data:`SUMMARY_COLUMNS`."""
    return [{"name": layer.name, "kind": layer.kind, "act": layer.options.get("act", ""),
             "sources": ", ".join(layer.sources),
             "output shape": "x".join(str(d) for d in layer.out_shape),
             "weights": _weight_count(layer),
             "source nodes": ", ".join(layer.source_nodes)} for layer in model.layers]


def summary_frame(model):
    """The layer summary as a pandas DataFrame (index: the layer's position)."""
    import pandas as pd

    return pd.DataFrame(summary_rows(model), columns=list(SUMMARY_COLUMNS))


def headline(model) -> str:
    from irc.limits import format_bytes

    return (f"Viya model {model.name!r} ({model.model_type}), {len(model.layers)} layers, "
            f"{format_bytes(model.weight_bytes())} of weights")


def summary_text(model) -> str:
    """The summary as text: one line per layer (name, kind, sources, output shape)."""
    lines = [headline(model)]
    for layer in model.layers:
        src = ",".join(layer.sources)
        shape = "x".join(str(d) for d in layer.out_shape)
        lines.append(f"  {layer.name:<28} {layer.kind:<10} <- {src:<28} {shape}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def layer_dot(model) -> str:
    """The Viya layers as a Graphviz graph: one box per layer (name, kind, act, output
    shape), an edge per source layer."""
    out = [f"digraph {_quote(model.name)} {{", "  rankdir=TB;",
           '  node [shape=box, fontname="Helvetica", fontsize=10];']
    for row in summary_rows(model):
        act = f" {row['act']}" if row["act"] else ""
        # two text lines (DOT's \\n); names are [a-z0-9_] and kinds, acts, shapes plain words
        label = f"{row['name']}\\n{row['kind']}{act}  {row['output shape']}".replace('"', "'")
        out.append(f'  {_quote(row["name"])} [label="{label}"];')
    for layer in model.layers:
        for source in layer.sources:
            out.append(f"  {_quote(source)} -> {_quote(layer.name)};")
    out.append("}")
    return "\n".join(out) + "\n"


def graph_svg(model) -> str | None:
    """The layer graph as SVG text, or None when Graphviz's `dot` is not installed (or fails:
    a notebook display never raises)."""
    if shutil.which("dot") is None:
        return None
    from irc.errors import IrcError
    from irc.ir.dot import render_svg

    try:
        return render_svg(layer_dot(model))
    except (IrcError, OSError, ValueError):
        return None


def model_html(model) -> str:
    """A notebook's view of the model: the headline, the notes, the summary table, the graph."""
    parts = [f"<p><b>{html.escape(headline(model))}</b></p>"]
    if model.notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in model.notes)
                     + "</ul>")
    parts.append(summary_frame(model).to_html(index=False, classes="irc-summary"))
    if len(model.layers) > MAX_DRAWN_LAYERS:
        parts.append(f"<p>layer graph not drawn: {len(model.layers)} layers (more than "
                     f"{MAX_DRAWN_LAYERS}); `irc inspect MODEL --stage optimized --format svg "
                     "-o FILE` draws it</p>")
        return "\n".join(parts)
    svg = graph_svg(model)
    if svg is not None:
        start = svg.find("<svg")
        parts.append(f"<details><summary>layer graph</summary>{svg[start:]}</details>")
    return "\n".join(parts)
