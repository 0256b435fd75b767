"""`irc compile`'s detection options: a YOLO head for a source that states none (an ONNX
tiny-YOLOv2 ending at its grid), or overriding the one a darknet cfg states."""
from __future__ import annotations

from irc.detection_spec import VERSIONS, DetectionSpec


def add_detection_arguments(p) -> None:
    g = p.add_argument_group("detection (YOLO v1/v2: a Viya detection layer after the grid)")
    g.add_argument("--detection", choices=sorted(VERSIONS),
                   help="end the model with Viya's detection layer decoding this YOLO grid "
                        "(darknet cfgs with [region]/[detection] state it themselves)")
    g.add_argument("--anchors", metavar="W,H,W,H,...",
                   help="YOLOv2 anchor sizes in grid cells, one (w, h) pair per prediction")
    g.add_argument("--classes", type=int, help="number of object classes")
    g.add_argument("--boxes", type=int,
                   help="predictions per grid cell (default: the anchor pairs' count)")
    g.add_argument("--no-class-softmax", action="store_true",
                   help="class scores through a logistic instead of a softmax")
    g.add_argument("--detection-threshold", type=float,
                   help=f"least score a box is kept with (default "
                        f"{DetectionSpec.detection_threshold})")
    g.add_argument("--iou-threshold", type=float,
                   help=f"overlap above which non-maximum suppression drops a box (default "
                        f"{DetectionSpec.iou_threshold})")
    g.add_argument("--max-boxes", type=int, help=f"boxes kept per image (default {DetectionSpec.max_boxes})")


SETTINGS = ("detection_threshold", "iou_threshold", "max_boxes")


def detection_from_args(args) -> DetectionSpec | dict | None:
    """A validated spec (--detection: InvalidModel, exit 2, before anything is read), the
    settings given for the head the source states (darknet), or None."""
    settings = {name: getattr(args, name) for name in SETTINGS
                if getattr(args, name, None) is not None}
    if getattr(args, "detection", None) is None:
        stray = [f"--{n.replace('_', '-')}" for n in ("anchors", "classes", "boxes")
                 if getattr(args, n, None) is not None]
        if stray:
            from irc.errors import InvalidModel
            raise InvalidModel(f"{', '.join(stray)} without --detection",
                               hint="add --detection yolov2 (or yolov1)")
        return settings or None
    try:
        anchors = tuple(float(a) for a in args.anchors.split(",") if a.strip()) \
            if args.anchors else ()
    except ValueError:
        from irc.errors import InvalidModel
        raise InvalidModel(f"--anchors {args.anchors!r} is not a comma-separated list of "
                           "numbers", hint="e.g. --anchors 1.08,1.19,3.42,4.41") from None
    if args.classes is None:
        from irc.errors import InvalidModel
        raise InvalidModel("--detection needs --classes N", hint="e.g. --classes 20 for VOC")
    boxes = args.boxes if args.boxes is not None else max(len(anchors) // 2, 1)
    return DetectionSpec.of({"version": args.detection, "classes": args.classes,
                             "boxes": boxes, "anchors": anchors,
                             "softmax": not args.no_class_softmax, **settings})
