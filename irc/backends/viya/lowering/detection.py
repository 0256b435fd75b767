"""A YOLO detection head: Viya's ``detection`` layer after the layer computing the grid.

The head is not an op of the graph: the source states it beside the graph (darknet's
``[region]``/``[detection]``, recorded as ONNX metadata) or the user gives it
(:class:`~irc.detection_spec.DetectionSpec`); either way it reaches lowering as
``graph.metadata["irc.detection"]``. This family's after-hook runs before the output layers are
added, so the grid stays the model's compared output (``model.outputs``: the source's grid ->
the Viya layer computing it) while the detection layer is the model's last layer.
"""
from __future__ import annotations

import math

from irc.backends.viya.kinds.detection import ROW
from irc.backends.viya.lowering.context import LoweringContext
from irc.backends.viya.lowering.registry import LOWERINGS
from irc.detection_spec import METADATA_KEY, DetectionSpec

LOWERINGS.emits("detection")


def detection_options(spec: DetectionSpec, grid: int) -> dict:
    """The detection layer's payload options, in DLPy's order for its ``Detection`` layer
    (keys and defaults: kinds/detection.py)."""
    options = {"act": "auto", "detectionmodeltype": f"yolov{spec.version}"}
    if spec.version == 2:
        options["anchors"] = list(spec.anchors)
    options.update(softmaxforclassprob=spec.softmax, coordtype=spec.coord_type,
                   classnumber=spec.classes, gridnumber=grid, predictionspergrid=spec.boxes)
    if spec.version == 1:
        options["dosqrt"] = spec.do_sqrt
    options.update({key: value for key, value in spec.training})
    options.update(detectionthreshold=spec.detection_threshold,
                   iouthreshold=spec.iou_threshold, maxboxes=spec.max_boxes)
    return options


@LOWERINGS.hook("after", order=50)
def add_detection_layer(ctx: LoweringContext) -> None:
    text = ctx.graph.metadata.get(METADATA_KEY)
    if text is None or ctx.problems:
        return
    spec = DetectionSpec.from_json(text)
    outputs = ctx.graph.outputs
    if len(outputs) != 1:
        ctx.problems.add(None, f"a detection head needs the one grid output; the model has "
                               f"{len(outputs)} outputs ({', '.join(outputs)})")
        return
    grid_value = outputs[0]
    layer_name = ctx.layer_of.get(grid_value)
    if layer_name is None or grid_value in ctx.multi:
        ctx.problems.add(None, f"the grid {grid_value!r} is not computed by one Viya layer")
        return
    shape = tuple(ctx.model.layer(layer_name).out_shape)
    grid = _grid_size(ctx, spec, grid_value, shape)
    if grid is None:
        return
    layer = ctx.add(None, "detection", detection_options(spec, grid), [grid_value], None,
                    name_hint="detection")
    layer.out_shape = (spec.max_boxes * ROW,)
    # the grid stays the compared output; the detection layer decodes it (kinds/detection.py)
    ctx.model.outputs[grid_value] = layer_name


def _grid_size(ctx, spec: DetectionSpec, value: str, shape: tuple) -> int | None:
    depth = spec.grid_depth()
    if spec.version == 2:
        if len(shape) == 3 and shape[0] == depth and shape[1] == shape[2]:
            return shape[1]
        what = f"{depth} x S x S (predictions {spec.boxes} x (5 + {spec.classes} classes))"
    else:
        side = math.isqrt(math.prod(shape) // depth) if depth else 0
        if len(shape) == 1 and side * side * depth == shape[0]:
            return side
        what = f"a vector of S·S·{depth} values ({spec.boxes} boxes x 5 + {spec.classes} classes)"
    ctx.problems.add(None, f"the detection head needs the grid {value!r} to be {what}; the model "
                           f"computes {'x'.join(map(str, shape))}: check --classes, the anchors "
                           "and the model's last layer")
    return None
