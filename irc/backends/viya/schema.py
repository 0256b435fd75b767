"""The Viya layer vocabulary: one home for what each layer kind is called, takes and stores.

Per kind: its ``addLayer`` type and aliases, the payload options irc sends with their defaults
(viya-target.md §3.2), its model-table ``layertype`` code, label and key prefix (§4.3; a label
of None was never observed in a server table), its weight datasets in canonical order (§5.3),
whether it carries ``act`` and a dropout rate. One activation table gives the act strings,
their aliases and the table labels/codes seen in server tables (§4.5).

Readers of this module: lowering's output (model.py weight order, payloads.py option check),
the model-table writer (table.py), the reference executor's reader, kind lists and dropout
rule (executor/), and the Viya reader/exporter (frontends/viya/). The executor's kernels
compute from the semantics spec, never from here: only names and kind lists are shared.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class _Marker:
    """A default that is not a value: required, automatic, or a rule stated in words."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return self.text


REQUIRED = _Marker("required")
AUTOMATIC = _Marker("automatic (omitted = Viya places the padding, §3.3)")
PER_CHANNEL = _Marker("one value per channel")
WINDOW = _Marker("the window size (DLPy's default; the server's is open, §3.3)")

IN, OPEN, OUT = "in scope", "open point", "out of scope"


@dataclass(frozen=True)
class TableForm:
    """How a kind appears in the model table (§4.3)."""

    code: int                 # layertype code (DLPy's reader)
    prefix: str | None        # option key prefix, "convopts" in "convopts.nfilters"
    label: str | None = None  # exact layertype label as servers write it; None = never seen


@dataclass(frozen=True)
class Kind:
    name: str                                 # addLayer `type`
    options: dict = field(default_factory=dict)   # payload option -> default (§3.2)
    aliases: tuple[str, ...] = ()              # other `type` strings the server accepts
    table: TableForm | None = None
    weights: tuple[str, ...] = ()              # HDF5 datasets, canonical order (§5.3)
    weight_shapes: str = ""                   # what §5.3/§5.5 say about their shapes
    act: bool = False                          # carries an `act` option
    auto_act: str | None = None                # what act 'auto' means (viya-semantics §3)
    dropout: bool = False                      # may carry a dropout rate (viya-semantics §12)
    scope: str = IN                            # IN, OPEN (not computed: why) or OUT
    why: str = ""                              # for OPEN/OUT kinds: why irc does not compute it


_CONV = {"nfilters": REQUIRED, "width": REQUIRED, "height": REQUIRED, "stridevertical": 1,
         "stridehorizontal": 1, "paddingheight": AUTOMATIC, "paddingwidth": AUTOMATIC,
         "act": "auto", "includebias": True, "dropout": 0.0}
_CONV_WEIGHTS = ("kernel", "bias")   # no bias dataset when includebias is false
_OUT_OF_SCOPE = "out of scope for irc (viya-target.md §3.2)"

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("input", {"nchannels": REQUIRED, "width": REQUIRED, "height": REQUIRED, "scale": 1.0,
                   "offsets": PER_CHANNEL, "normstds": PER_CHANNEL, "randomflip": "none",
                   "randomcrop": "none", "randommutation": "none", "dropout": 0.0},
         table=TableForm(1, "inputopts", "Input Layer"), dropout=True),
    Kind("convo", _CONV, aliases=("convolution",),
         table=TableForm(2, "convopts", "Convolution Layer"), weights=_CONV_WEIGHTS,
         weight_shapes="kernel (O, I, kH, kW), bias (O)", act=True, auto_act="relu",
         dropout=True),
    Kind("groupconvo", {**_CONV, "ngroups": 1}, table=TableForm(17, "groupconvopts"),
         weights=_CONV_WEIGHTS, weight_shapes="kernel (O, I/g, kH, kW), bias (O)", act=True,
         auto_act="relu", dropout=True),
    Kind("transconvo", {**_CONV, "outputpaddingheight": 0, "outputpaddingwidth": 0},
         table=TableForm(16, "transposeconvopts"), act=True, dropout=True, scope=OPEN,
         why="its weight layout is an open point, viya-semantics.md §14"),
    Kind("pool", {"width": REQUIRED, "height": REQUIRED, "stridevertical": WINDOW,
                  "stridehorizontal": WINDOW, "paddingheight": AUTOMATIC,
                  "paddingwidth": AUTOMATIC, "pool": "max", "dropout": 0.0},
         aliases=("pooling",), table=TableForm(3, "poolingopts", "Pooling Layer"),
         dropout=True),
    Kind("fc", {"n": REQUIRED, "act": "auto", "includebias": True, "dropout": 0.0},
         aliases=("fullconnect",), table=TableForm(4, "fcopts", "Full Connect Layer"),
         weights=_CONV_WEIGHTS, weight_shapes="kernel (n, in), bias (n)", act=True,
         auto_act="tanh", dropout=True),
    Kind("output", {"n": REQUIRED, "act": "auto", "includebias": True, "fullconnect": True,
                    "error": "auto"},
         table=TableForm(5, "outputopts", "Output Layer"), weights=_CONV_WEIGHTS,
         weight_shapes="as fc; none when fullconnect is false", act=True,
         auto_act="softmax"),
    Kind("recurrent", {"n": REQUIRED, "rnntype": REQUIRED, "outputtype": REQUIRED,
                       "reversed": False, "act": "auto", "dropout": 0.0},
         table=TableForm(6, "rnnopts", "Recurrent Layer"),
         weights=("kernel", "recurrent_kernel", "bias"),
         weight_shapes="Keras layout (§5.5): kernel (d, G·n), recurrent_kernel (n, G·n), "
                       "bias (G·n) or (2, 3n) for GRU reset_after",
         act=True, dropout=True),   # auto act: an executor option (viya-semantics §16)
    Kind("batchnorm", {"act": "auto"},
         table=TableForm(8, "bnopts", "Batch Normalization Layer"),
         weights=("gamma", "beta", "moving_mean", "moving_variance"),
         weight_shapes="each (C); moving_variance with the source eps added", act=True,
         auto_act="identity"),
    Kind("residual", {"act": "auto"}, table=TableForm(9, "residualopts"), act=True,
         auto_act="identity"),
    Kind("concat", {"act": "auto"},
         table=TableForm(10, "concatopts", "Concat (i.e., concatenation) Layer"), act=True,
         auto_act="identity"),
    Kind("reshape", {"width": REQUIRED, "height": REQUIRED, "depth": REQUIRED, "act": "auto",
                     "order": "auto"},
         table=TableForm(14, "reshapeopts", ""), act=True, auto_act="identity"),
    Kind("detection", table=TableForm(11, "detectionopts", "Detection Layer"), scope=OUT,
         why=_OUT_OF_SCOPE),
    *(Kind(name, table=TableForm(code, None) if code else None, scope=OUT, why=_OUT_OF_SCOPE)
      for name, code in (("scale", 12), ("keypoints", 13), ("fcmp", 15),
                         ("channelshuffle", 18), ("segmentation", 19), ("split", 0),
                         ("layernorm", 0), ("mhattention", 0), ("projection", 0),
                         ("cluster", 0), ("survival", 0), ("closs", 0),
                         ("regionproposal", 0), ("roipooling", 0), ("fastrcnn", 0))),
)}


@dataclass(frozen=True)
class Activation:
    name: str                          # the act string irc sends
    aliases: tuple[str, ...] = ()      # other strings the server accepts for it
    label: str | None = None           # model-table label (§4.5); None = never seen
    code: int | None = None            # model-table code; None = unknown (§4.6)
    label_match: tuple[str, ...] = ()  # substrings of a lower-cased label naming it (DLPy)
    computed: bool = True              # an elementwise function the executor applies


# Order matters for label matching: the first activation whose substring occurs wins.
ACTIVATIONS: dict[str, Activation] = {a.name: a for a in (
    Activation("auto", label="Automatic", code=0, label_match=("automatic",), computed=False),
    Activation("identity", label="Identity", code=1, label_match=("identity",)),
    Activation("softmax", label="Softmax", code=7, label_match=("softmax",), computed=False),
    Activation("leaky", label="Leaky Activation function", code=12, label_match=("leaky",)),
    Activation("relu", ("rectifier",), "Rectifier", 8, ("rectifier",)),
    Activation("tanh", label_match=("hyperbolic",)),
    Activation("sigmoid", ("logistic",), label_match=("logistic", "sigmoid")),
    Activation("softplus", label_match=("softplus",)),
    Activation("elu"),
    Activation("exp"),    # exp, sin, cos: mapped by DLPy's ONNX importer (§3.2)
    Activation("sin"),
    Activation("cos"),
    Activation("fcmp", computed=False),   # user-defined, with fcmpact
)}
ACT_ALIASES = {alias: a.name for a in ACTIVATIONS.values() for alias in a.aliases}
# Elementwise activations (what an act option, or an auto_act_* executor option, may compute).
COMPUTED_ACTS = tuple(a.name for a in ACTIVATIONS.values() if a.computed)


# ----------------------------------------------------------------------------- look-ups

def kind(name: str) -> Kind | None:
    """The kind for an addLayer type or alias (any case), or None when Viya has no such type."""
    low = name.lower()
    return KINDS.get(low) or next((k for k in KINDS.values() if low in k.aliases), None)


def canonical_type(name: str) -> str:
    """An addLayer type with aliases resolved (unknown types are returned lower-cased)."""
    found = kind(name)
    return found.name if found else name.lower()


def kinds(scope: str = IN) -> tuple[str, ...]:
    return tuple(k.name for k in KINDS.values() if k.scope == scope)


def weight_order(name: str) -> tuple[str, ...]:
    found = KINDS.get(name)
    return found.weights if found else ()


def default(name: str, option: str):
    """The default of one payload option (a value, or one of the markers above)."""
    return KINDS[name].options[option]


def act_name(text: str) -> str:
    """An act string with aliases resolved (lower-cased)."""
    low = str(text).lower()
    return ACT_ALIASES.get(low, low)


def act_from_label(label: str) -> str | None:
    """The activation a model-table label names, by DLPy's substring rules, or None."""
    low = (label or "").strip().lower()
    return next((a.name for a in ACTIVATIONS.values() for needle in a.label_match
                 if needle in low), None)


def by_code(code: int) -> str | None:
    return next((k.name for k in KINDS.values() if k.table and k.table.code == code), None)


def by_label(label: str) -> str | None:
    return next((k.name for k in KINDS.values() if k.table and k.table.label == label), None)


def act_by_code(code: int) -> str | None:
    return next((a.name for a in ACTIVATIONS.values() if a.code == code), None)
