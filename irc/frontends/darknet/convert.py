"""Darknet .cfg (+ .weights) -> ONNX ModelProto (opset 17, NCHW) computing darknet's numbers.

Sections are converted in order by one handler each (``layers.py``, ``heads.py``), through
:class:`irc.utils.onnx_builder.OnnxBuilder`. Darknet numbers its layers from 0 after [net];
``[route] layers=`` and ``[shortcut] from=`` refer to those numbers (negative: counted back
from the section itself). Every problem is collected and reported once: unknown and refused
sections with their lines, then refused option values; a .weights file whose size differs
from what the .cfg implies is refused with both sizes.

The graph ends at the last layer's output, or, for a detector, at the tensor its
[region]/[detection] head reads; the head itself is recorded in the model's metadata under
``irc.detection`` (JSON: section, its options as the cfg gives them, the ONNX input name).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import onnx

from irc.errors import UnsupportedAttribute, UnsupportedOp
from irc.frontends.darknet.cfg import DarknetCfg, Options, Section
from irc.frontends.darknet.registry import DARKNET_SECTIONS, REFUSED, Skip
from irc.frontends.darknet.weights import WeightsFile
from irc.frontends.registry import format_unsupported
from irc.problems import Problems
from irc.utils.onnx_builder import OnnxBuilder

INPUT = "data"
DETECTION_KEY = "irc.detection"
HEADS = ("region", "detection")
IGNORED = ("cost",)  # training-only sections: nothing at inference


@dataclass
class Tensor:
    name: str
    shape: tuple  # per example: (C, H, W) for an image, (D,) for a flat vector

    @property
    def chw(self) -> tuple:
        """(C, H, W) as darknet sees it (a flat vector is D x 1 x 1)."""
        return self.shape if len(self.shape) == 3 else (self.shape[0], 1, 1)


@dataclass
class DarknetConversion:
    model: onnx.ModelProto
    has_weights: bool
    warnings: list[str] = field(default_factory=list)
    input_name: str = INPUT
    # (layer index, ONNX output name) of each graph output: the oracle maps them to OpenCV
    outputs: list[tuple[int, str]] = field(default_factory=list)
    head: dict | None = None  # what metadata_props["irc.detection"] holds
    # [(layer name, role, shape)] in .weights order: what a .weights file for the cfg holds
    weight_specs: list[tuple[str, str, tuple]] = field(default_factory=list)


class Converter:
    def __init__(self, cfg: DarknetCfg, weights: WeightsFile | None, input_shape=None,
                 layout_only: bool = False):
        self.cfg = cfg
        # layout_only: walk the net for its shapes, outputs and weight layout; no ONNX model
        self.layout_only = layout_only
        self.label = cfg.path
        self.weights_file = weights
        self.input_shape = input_shape
        self.problems = Problems()
        self.warnings: list[str] = []
        self.layer_out: list[Tensor | None] = []
        self.weight_specs: list[tuple[str, str, tuple]] = []
        self.section: Section | None = None
        self.index = -1
        self.head: dict | None = None

    # ---- what handlers use --------------------------------------------------------------
    @property
    def name(self) -> str:
        """The current section's name in the ONNX graph: its kind and darknet layer number."""
        return f"{self.section.kind}{self.index}"

    def options(self) -> Options:
        return Options(self.section, self.label)

    def problem(self, message: str) -> None:
        self.problems.add(f"{self.section.where()} (layer {self.index})", message)

    def refuse(self, message: str):
        self.problem(message)
        raise Skip

    def previous(self) -> Tensor:
        return self.layer(self.index - 1)

    def layer(self, index: int) -> Tensor:
        """Output of darknet layer ``index`` (-1: the net input); Skip if it failed."""
        if index == -1:
            return self.input
        if not 0 <= index < self.index:
            self.refuse(f"refers to layer {index}; only layers 0..{self.index - 1} come before")
        t = self.layer_out[index]
        if t is None:
            raise Skip
        return t

    def resolve(self, ref: int) -> int:
        """A route/shortcut reference: negative counts back from this section."""
        return self.index + ref if ref < 0 else ref

    def op(self, op_type: str, *inputs: str, suffix: str = "", **attrs) -> str:
        name = self.name + (f"_{suffix}" if suffix else "")
        return self.b.op(op_type, *inputs, name=name, **attrs)

    def const(self, suffix: str, array) -> str:
        name = f"{self.name}_{suffix}"
        return name if self.layout_only else self.b.const(np.asarray(array, np.float32), name)

    def take(self, specs: list[tuple[str, tuple]]) -> list[np.ndarray]:
        """The section's arrays from the .weights file, in ``specs`` order (zeros without a
        file, or past its end: the size check then refuses the file)."""
        arrays = []
        for role, shape in specs:
            self.weight_specs.append((self.name, role, tuple(shape)))
            count = int(np.prod(shape))
            chunk = self.weights_file.take(count) if self.weights_file is not None else None
            if chunk is not None:
                arrays.append(chunk.reshape(shape))
            else:  # broadcast: a layout-only walk of a large net allocates nothing
                arrays.append(np.broadcast_to(np.float32(0), shape))
        return arrays

    # ---- the conversion -------------------------------------------------------------------
    def declare_input(self) -> None:
        opts = Options(self.cfg.net, self.label)
        c, h, w = opts.int("channels", 0), opts.int("height", 0), opts.int("width", 0)
        if self.input_shape is not None:
            shape = tuple(int(d) for d in self.input_shape)
            if len(shape) == 4:
                shape = shape[1:]
            if len(shape) != 3:
                raise UnsupportedAttribute(f"input_shape {list(self.input_shape)}: a darknet "
                                           "net takes (C, H, W) or (N, C, H, W)", file=self.label)
            c, h, w = shape
        if min(c, h, w) <= 0:
            raise UnsupportedAttribute(
                f"[net] gives channels={c}, height={h}, width={w}; irc needs all three > 0",
                file=self.label, hint="set them in [net] or pass --input-shape C,H,W")
        self.input = Tensor(INPUT, (c, h, w))
        self.b = OnnxBuilder(self.cfg.net.options.get("name", "darknet"), ("N", c, h, w),
                             input_name=INPUT)

    def run(self) -> DarknetConversion:
        self.check_sections()
        self.declare_input()
        for self.index, self.section in enumerate(self.cfg.layers):
            handler = DARKNET_SECTIONS.get(self.section.kind)
            try:
                handler.fn(self)
            except Skip:
                self.layer_out.append(None)
            unread = [k for k in self.section.options if k not in self.section.used]
            if unread:  # darknet's own parser ignores keys it does not look up, too
                self.warnings.append(f"{self.section.where()}: irc (like darknet at "
                                     f"inference) does not read {', '.join(unread)}")
            for key in self.section.repeated:
                self.warnings.append(f"{self.section.where()}: {key} is given more than "
                                     "once; the first value counts, as in darknet")
        self.section = None
        self.problems.raise_if_any(
            UnsupportedAttribute, f"{len(self.problems)} problem(s) converting the darknet "
            "net:\n  ", sep="\n  ", file=self.label,
            hint="each listed section computes something irc/Viya cannot express exactly")
        if self.weights_file is not None:
            self.weights_file.check_size(f"{len(self.cfg.layers)} sections")
        return self.build()

    def check_sections(self) -> None:
        """Every section has a handler, or the error lists all that do not (with lines)."""
        missing = DARKNET_SECTIONS.unsupported(
            [(s.kind, f"line {s.line}") for s in self.cfg.layers])
        if not missing:
            return
        refused = [f"[{kind}]: {REFUSED[kind]}" for kind in sorted(missing) if kind in REFUSED]
        unknown = sorted(kind for kind in missing if kind not in REFUSED)
        hint = ("irc converts darknet sections " + ", ".join(
            f"[{k}]" for k in DARKNET_SECTIONS.op_types()) + ".")
        if refused:
            hint += "\n" + "\n".join(refused)
        if unknown:
            hint += "\nunknown to irc (misspelt, or from a darknet fork): " + \
                ", ".join(f"[{k}]" for k in unknown)
        first = f"[{sorted(missing)[0]}] at {missing[sorted(missing)[0]][0]}"
        raise UnsupportedOp(format_unsupported("darknet section", {f"[{k}]": v for k, v in
                                                                   missing.items()}, hint),
                            file=self.label, node=first,
                            hint="remove or replace these sections in the .cfg")

    def final_layer(self) -> int:
        """The layer whose output is the net's: the last one that is not a training-only
        section or a detection head (those come last in darknet's detectors)."""
        last = len(self.cfg.layers) - 1
        while last >= 0 and self.cfg.layers[last].kind in IGNORED + HEADS:
            last -= 1
        return last

    def build(self) -> DarknetConversion:
        last = self.final_layer()
        if last < 0:
            raise UnsupportedAttribute("the net computes nothing: every section is a head or "
                                       "training-only", file=self.label)
        out = self.layer_out[last]
        if self.layout_only:
            return DarknetConversion(None, self.weights_file is not None, self.warnings, INPUT,
                                     [(last, out.name)], self.head, self.weight_specs)
        model = self.b.build([out.name], [["N", *out.shape]])
        model.producer_name = "irc.darknet"
        if self.head is not None:
            entry = model.metadata_props.add()
            entry.key, entry.value = DETECTION_KEY, json.dumps(self.head)
        return DarknetConversion(model, self.weights_file is not None, self.warnings, INPUT,
                                 [(last, out.name)], self.head, self.weight_specs)
