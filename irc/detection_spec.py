"""The detection head of a YOLO model, as one typed object validated when it is built.

A source carries it (darknet's ``[region]`` or ``[detection]`` section, which the darknet
frontend records in the ONNX model's metadata under :data:`METADATA_KEY`), or the user gives it
for a source that has none (an ONNX tiny-YOLOv2 ending at its 125x13x13 grid):
``--detection yolov2 --anchors ... --classes N`` / ``irc.compile(..., detection={...})``.
Lowering appends Viya's ``detection`` layer after the layer computing the grid.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from irc.errors import InvalidModel

METADATA_KEY = "irc.detection"
VERSIONS = {"yolov1": 1, "yolov2": 2}
COORD_TYPES = ("yolo", "coco", "rect")


@dataclass(frozen=True)
class DetectionSpec:
    """What Viya's detection layer needs beyond the grid itself.

    ``anchors``: YOLOv2's (w, h) pairs in grid cells, one pair per prediction of a cell;
    ``boxes``: predictions per grid cell (darknet's ``num``); ``classes``: class count;
    ``softmax``: class probabilities through a softmax (YOLOv2 ``softmax=1``);
    ``detection_threshold``: the least score a box is kept with; ``iou_threshold``: non-maximum
    suppression's overlap; ``max_boxes``: boxes kept per image; ``do_sqrt``: YOLOv1 predicts
    the square roots of w and h. Training-only options (loss scales) ride along in ``training``.
    """

    version: int = 2
    classes: int = 20
    boxes: int = 5
    anchors: tuple[float, ...] = ()
    coords: int = 4
    softmax: bool = True
    coord_type: str = "yolo"
    detection_threshold: float = 0.3   # these defaults are the detection kind's payload
    iou_threshold: float = 0.45        # defaults too (backends/viya/kinds/detection.py reads
    max_boxes: int = 200               # them from here)
    do_sqrt: bool = False
    training: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        def bad(message):
            return InvalidModel(f"detection options: {message}",
                                hint="see `irc compile --help` (--detection, --anchors, "
                                     "--classes) and README's Detection section")
        if self.version not in (1, 2):
            raise bad(f"YOLO version {self.version!r}: Viya's detection layer is YOLO v1 or v2")
        for name in ("classes", "boxes", "max_boxes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(f"{name}={value!r} must be a positive integer")
        if self.coords != 4:
            raise bad(f"coords={self.coords}: Viya's detection layer predicts 4 coordinates")
        anchors = tuple(float(a) for a in self.anchors)
        object.__setattr__(self, "anchors", anchors)
        if self.version == 2 and len(anchors) != 2 * self.boxes:
            raise bad(f"{len(anchors)} anchor values for {self.boxes} predictions per cell; "
                      f"YOLOv2 needs one (w, h) pair per prediction ({2 * self.boxes} values)")
        if any(a <= 0 for a in anchors):
            raise bad(f"anchors must be positive, got {list(anchors)}")
        if self.coord_type not in COORD_TYPES:
            raise bad(f"coord_type {self.coord_type!r}; choose one of {', '.join(COORD_TYPES)}")
        for name in ("detection_threshold", "iou_threshold"):
            value = getattr(self, name)
            if not 0 <= float(value) <= 1:
                raise bad(f"{name}={value!r} must lie in [0, 1]")
            object.__setattr__(self, name, float(value))

    # ---- forms ---------------------------------------------------------------------------
    def grid_depth(self) -> int:
        """Channels of the YOLOv2 grid (or values per cell of YOLOv1's vector)."""
        if self.version == 2:
            return self.boxes * (5 + self.classes)
        return self.boxes * 5 + self.classes

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "DetectionSpec":
        """A spec as :meth:`to_json` writes it, or a darknet head as the darknet frontend
        records it: {"section": "region"|"detection", "options": {key: text}}."""
        data = json.loads(text)
        if "section" in data:
            return from_darknet(data["section"], data.get("options", {}))
        data["anchors"] = tuple(data.get("anchors", ()))
        data["training"] = tuple(tuple(item) for item in data.get("training", ()))
        return cls(**data)

    @classmethod
    def of(cls, value) -> "DetectionSpec | None":
        """None, a DetectionSpec, or a dict of its fields (``version`` may be 'yolov2')."""
        if value is None or isinstance(value, DetectionSpec):
            return value
        if not isinstance(value, dict):
            raise InvalidModel(f"detection options must be a dict or a DetectionSpec, got "
                               f"{type(value).__name__}")
        data = dict(value)
        version = data.get("version", 2)
        if isinstance(version, str):
            if version.lower() not in VERSIONS:
                raise InvalidModel(f"detection options: unknown model type {version!r}; "
                                   f"choose one of {', '.join(VERSIONS)}")
            data["version"] = VERSIONS[version.lower()]
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidModel(f"detection options: unknown field(s) {unknown}; valid: "
                               f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**data)


def check_fields(given) -> None:
    """What can be checked of the user's detection options before the model is read: a full
    DetectionSpec, or a dict of fields (with ``version``: a whole head, validated now;
    without: settings layered over the head the source states, checked by name and range)."""
    if given is None or isinstance(given, DetectionSpec):
        return
    if not isinstance(given, dict):
        raise InvalidModel(f"detection options must be a dict or a DetectionSpec, got "
                           f"{type(given).__name__}")
    if "version" in given:
        DetectionSpec.of(given)
        return
    unknown = sorted(set(given) - set(DetectionSpec.__dataclass_fields__))
    if unknown:
        raise InvalidModel(f"detection options: unknown field(s) {unknown}; valid: "
                           f"{', '.join(DetectionSpec.__dataclass_fields__)}")
    for name in ("detection_threshold", "iou_threshold"):
        if name in given and not 0 <= float(given[name]) <= 1:
            raise InvalidModel(f"detection options: {name}={given[name]!r} must lie in [0, 1]")


def layered(source_head: str | None, given) -> DetectionSpec:
    """The head lowering uses: the user's whole head, or the user's settings over the one the
    source states (``source_head``, the metadata text)."""
    if isinstance(given, DetectionSpec):
        return given
    if "version" in given:
        return DetectionSpec.of(given)
    if source_head is None:
        raise InvalidModel(f"detection settings {sorted(given)} for a model that states no "
                           "detection head", hint="give --detection yolov2 (or yolov1) with "
                                                  "--classes and --anchors")
    return replace(DetectionSpec.from_json(source_head), **given)


# darknet [region] / [detection] keys -> the detection layer's training options that SAS's
# client sends (loss scales; bias_match: match the anchor sizes). Inference ignores them.
_DARKNET_TRAINING = {"coord_scale": "coordscale", "object_scale": "objectscale",
                     "noobject_scale": "predictionnotaobjectscale", "class_scale": "classscale",
                     "bias_match": "matchanchorsize"}


def from_darknet(section: str, options: dict, **overrides) -> DetectionSpec:
    """The spec a darknet ``[region]`` (YOLOv2) or ``[detection]`` (YOLOv1) section states."""
    def number(key, default, kind=float):
        try:
            return kind(float(options.get(key, default)))
        except ValueError:
            raise InvalidModel(f"[{section}] {key}={options[key]!r} is not a number") from None
    training = tuple((viya, bool(number(key, 0, int)) if viya == "matchanchorsize"
                      else number(key, 0.0))
                     for key, viya in _DARKNET_TRAINING.items() if key in options)
    fields = {"classes": number("classes", 20, int), "boxes": number("num", 1, int),
              "coords": number("coords", 4, int), "training": training}
    if section == "region":
        text = str(options.get("anchors", "")).replace(" ", "")
        fields.update(version=2, softmax=bool(number("softmax", 0, int)),
                      anchors=tuple(float(a) for a in text.split(",") if a))
    elif section == "detection":
        fields.update(version=1, softmax=False, do_sqrt=bool(number("sqrt", 0, int)))
    else:
        raise InvalidModel(f"[{section}] is not a YOLO v1/v2 detection head")
    fields.update(overrides)
    return DetectionSpec(**fields)
