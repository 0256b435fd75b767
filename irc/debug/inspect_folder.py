"""A text view of an output folder, read the way the reference executor reads it."""
from __future__ import annotations


def describe_folder(path) -> str:
    from irc.backends.viya.executor import infer_shapes, load_viya_model

    model = load_viya_model(path)
    shapes = infer_shapes(model)
    lines = [f"Viya model {model.name!r} from {model.model_path} + {model.weights_path}"]
    for layer in model.layers:
        shape = "x".join(str(d) for d in shapes.get(layer.name, ()))
        weights = ", ".join(f"{k}{tuple(v.shape)}" for k, v in layer.weights.items())
        lines.append(f"  {layer.name:<28} {layer.type:<10} <- {','.join(layer.src_layers):<24} "
                     f"{shape:<12} {weights}")
    return "\n".join(lines)
