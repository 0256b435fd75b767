"""What every Viya layer kind declares: its facts, and the facets consumers call.

A kind is a :class:`Kind` subclass with class attributes for the facts and methods for the
facets. Kinds irc does not compute keep ``scope`` OPEN or OUT and a ``why``; their facets raise
:class:`KindRefused` with that reason, so no consumer ever falls through to another kind's code.
"""
from __future__ import annotations

from dataclasses import dataclass

from irc.errors import InvalidModel, UnsupportedOp


class _Marker:
    """A default that is not a value: required, automatic, or a rule stated in words."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return self.text


REQUIRED = _Marker("required")
AUTOMATIC = _Marker("automatic (omitted = Viya places the padding, viya-target.md §3.3)")
PER_CHANNEL = _Marker("one value per channel")
WINDOW = _Marker("the window size (DLPy's default; the server's is open, §3.3)")

IN, OPEN, OUT = "in scope", "open point", "out of scope"


@dataclass(frozen=True)
class TableForm:
    """How a kind appears in the model table (viya-target.md §4.3)."""

    code: int                 # layertype code (DLPy's reader)
    prefix: str | None        # option key prefix, "convopts" in "convopts.nfilters"
    label: str | None = None  # exact layertype label as servers write it; None = never seen


class KindRefused(UnsupportedOp):
    """A facet of a kind irc does not compute (OPEN or OUT), with the kind's reason."""


class Raw:
    """One layer's payload options (lower-case keys) as the reader found them, with typed access.

    The reader builds it from model.json or from the table rows the kind's codec decoded;
    :meth:`Kind.normalize` turns it into the executor's option dict.
    """

    def __init__(self, name: str, kind: "Kind", options: dict, file, per_axis_padding=False):
        self.name, self.kind, self.options, self.file = name, kind, options, file
        self.per_axis_padding = per_axis_padding   # table rows give each axis separately

    def fail(self, message: str, hint: str | None = None) -> InvalidModel:
        return InvalidModel(message, node=self.name, file=str(self.file) if self.file else None,
                            hint=hint)

    def get(self, key: str, fallback=None):
        return self.options.get(key, fallback)

    def num(self, key: str, fallback=None, *, integer: bool = True):
        value = self.options.get(key, fallback)
        if value is None:
            raise self.fail(f"{self.kind.name} layer lacks option {key!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise self.fail(f"option {key}={value!r} is not a number") from None
        if integer and value != int(value):
            raise self.fail(f"option {key}={value!r} must be an integer")
        return int(value) if integer else value

    def flag(self, key: str, fallback) -> bool:
        value = self.options.get(key, fallback)
        return value.lower() in ("true", "1", "yes") if isinstance(value, str) else bool(value)

    def text(self, key: str) -> str:
        """A string option, lower-cased, with the kind's payload default."""
        return str(self.options.get(key, self.kind.default(key))).lower()

    def default(self, key: str):
        return self.kind.default(key)


class Kind:
    """One addLayer type. Subclasses set the facts below and implement the facets."""

    name: str = ""                       # addLayer `type`
    options: dict = {}                   # payload option -> default (viya-target.md §3.2)
    aliases: tuple[str, ...] = ()        # other `type` strings the server accepts
    table: TableForm | None = None
    codec: tuple = ()                    # model-table rows (codec.py fields), in written order
    table_refusal: str = ""              # why irc writes no table rows for it ("" = it does)
    weights: tuple[str, ...] = ()        # HDF5 datasets, canonical order (§5.3)
    weight_doc: str = ""                 # what §5.3/§5.5 say about their shapes
    act: bool = False                    # carries an `act` option
    auto_act: str | None = None          # what act 'auto' means (viya-semantics §3)
    dropout: bool = False                # may carry a dropout rate (viya-semantics §12)
    scope: str = IN                      # IN, OPEN (not computed: why) or OUT
    why: str = ""                        # for OPEN/OUT kinds: why irc does not compute it
    export_refusal: str = ""             # why `irc export` cannot write it as ONNX ("" = it can)

    def default(self, option: str):
        return self.options[option]

    def refused(self, what: str, node=None) -> KindRefused:
        return KindRefused(f"{self.name} layers cannot be {what} ({self.why})", node=node)

    # ---- facets (an IN kind implements each one it has; the defaults refuse) ----------------
    def normalize(self, raw: Raw) -> dict:
        """Payload options -> the executor's option dict (act and dropout are the reader's)."""
        raise self.refused("executed", raw.name)

    def output_shape(self, layer, src_shapes: list, options) -> tuple:
        raise self.refused("executed", layer.name)

    def weight_shapes(self, layer, src_shapes: list, options) -> dict:
        """{dataset: shape} in §5.3 order; {} for a kind without weights."""
        return {}

    def run(self, layer, sources: list, options):
        """The layer's output before its activation and dropout (run.py applies those)."""
        raise self.refused("executed", layer.name)

    def export(self, ex, sources: list) -> str:
        """Lower the layer ``ex.layer`` to IR ops through ``ex`` (frontends/viya/lowering.py);
        returns the IR value holding its output."""
        raise KindRefused(self.export_refusal or f"{self.name} layers cannot be exported to "
                          f"ONNX ({self.why})", node=ex.layer.name)


def one_source(layer, src_shapes: list, image: bool = True) -> tuple:
    """The single source shape of a layer that reads one (a (C, H, W) image when ``image``)."""
    if not src_shapes:
        raise InvalidModel(f"{layer.type} layer has no srcLayers", node=layer.name)
    if len(src_shapes) != 1:
        raise InvalidModel(f"{layer.type} layer needs exactly one source, got "
                           f"{len(src_shapes)}", node=layer.name)
    if image and len(src_shapes[0]) != 3:
        raise InvalidModel(f"{layer.type} layer needs a (C, H, W) source, got a vector",
                           node=layer.name)
    return tuple(src_shapes[0])
