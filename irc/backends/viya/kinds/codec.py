"""The model-table codec: one field per table item, which both writes it and reads it back.

A kind lists its fields in ``Kind.codec`` (the order rows are written in). ``table.py`` writes a
layer's rows through :meth:`Field.write`; the executor's reader turns a layer's rows back into
payload options through :meth:`Field.read`, after copying every numeric row under its own key
(so rows no field names, as servers write for options irc never sends, still reach the
normaliser). Only items whose keys, labels and codes were seen in server-written tables are
written (viya-target.md §4.4-4.5); anything else raises ``TableNotExpressible`` naming the item.
"""
from __future__ import annotations

from irc.errors import IrcError

from .acts import ACTIVATIONS, act_by_code, act_from_label, act_name
from .base import IN

# Activations whose table label and code were seen in server tables (§4.5); irc always sends
# act explicitly, so 'auto' is never written.
ACT_ROWS = {a.name: (a.label, a.code) for a in ACTIVATIONS.values()
            if a.name != "auto" and a.label is not None}
TRUE_LABELS = ("true", "1", "yes")


class TableNotExpressible(IrcError):
    kind = "model table"


class Rows:
    """The rows of one layer being written."""

    def __init__(self, layer, layer_id: float, prefix: str):
        self.layer, self.layer_id, self.prefix = layer, layer_id, prefix
        self.rows: list[tuple] = []

    def num(self, key: str, value, label: str | None = None) -> None:
        self.rows.append((self.layer.name, f"{self.prefix}.{key}",
                          label if label is not None else key.split(".")[-1], float(value),
                          self.layer_id))

    def enum(self, key: str, label_code: tuple) -> None:
        label, code = label_code
        self.rows.append((self.layer.name, f"{self.prefix}.{key}", label, float(code),
                          self.layer_id))

    def fail(self, item: str) -> TableNotExpressible:
        return TableNotExpressible(f"layer {self.layer.name!r} ({self.layer.kind}): {item}",
                                   hint="use the buildModel/addLayer payloads in model.json, "
                                        "which express every layer irc emits")


class Read:
    """One layer's rows being read: ``rows`` {key: (label, number)} (keys lower-case, prefix
    removed), ``raw`` the payload options built so far, ``fail`` the reader's error."""

    def __init__(self, rows: dict, raw: dict, fail):
        self.rows, self.raw, self.fail = rows, raw, fail


class Field:
    def write(self, out: Rows, options: dict) -> None:
        raise NotImplementedError

    def read(self, src: Read) -> None:
        """Translate the rows this field wrote into payload options (default: nothing to do,
        the numeric row already sits in ``raw`` under its own key)."""


class Num(Field):
    """A number: payload option ``option`` <-> row ``key``."""

    def __init__(self, key: str, option: str | None = None):
        self.key, self.option = key, option or key

    def write(self, out, options):
        out.num(self.key, options[self.option])

    def read(self, src):
        if self.key.lower() in src.raw and self.option != self.key.lower():
            src.raw[self.option] = src.raw[self.key.lower()]


class NegatedFlag(Field):
    """A boolean payload option stored negated: includebias <-> no_bias (0 = has a bias)."""

    def __init__(self, key: str, option: str):
        self.key, self.option = key, option

    def write(self, out, options):
        out.num(self.key, 0 if options[self.option] else 1)

    def read(self, src):
        if self.key.lower() in src.raw:
            src.raw[self.option] = not src.raw[self.key.lower()]


class Const(Field):
    """A row the server writes with a fixed value (training-only options); ignored on read."""

    def __init__(self, key: str, value):
        self.key, self.value = key, value

    def write(self, out, options):
        if isinstance(self.value, tuple):
            out.enum(self.key, self.value)
        else:
            out.num(self.key, self.value)


def training_defaults(with_dropout: bool = True) -> tuple:
    """Rows servers write for options that do not matter at inference (§4.4)."""
    return ((Const("dropout", 0),) if with_dropout else ()) + (
        Const("initbias", 0), Const("mean", 0), Const("std", 1), Const("truncfact", 0),
        Const("init", ("Xavier", 1)))


class Enum(Field):
    """An option written as a (label, code) pair; ``decode(label, code)`` reads it back."""

    def __init__(self, key: str, option: str, labels: dict, decode, what: str = ""):
        self.key, self.option, self.labels, self.decode = key, option, labels, decode
        self.what = what or option

    def write(self, out, options):
        value = options[self.option]
        if value not in self.labels:
            raise out.fail(f"{self.what} {value!r} has no known table code")
        out.enum(self.key, self.labels[value])

    def read(self, src):
        if self.key.lower() in src.rows:
            src.raw[self.option] = self.decode(*src.rows[self.key.lower()])


class Act(Field):
    def write(self, out, options):
        act = options["act"]
        if act not in ACT_ROWS:
            raise out.fail(f"activation {act!r} has no known table code")
        out.enum("act", ACT_ROWS[act])

    def read(self, src):
        if "act" not in src.rows:
            return
        label, code = src.rows["act"]
        low = (label or "").strip().lower()
        found = act_from_label(low) or (act_name(low) if act_name(low) in ACTIVATIONS else None)
        if found is None and code is not None:
            found = act_by_code(int(code))
        if found is None:
            raise src.fail(f"unknown activation label {label!r} (code {code})")
        src.raw["act"] = found


class Strides(Field):
    def write(self, out, options):
        sv, sh = options["stridevertical"], options["stridehorizontal"]
        if sv != sh:
            raise out.fail("the `stride` row for unequal strides is unknown")
        out.num("stride", sv)
        out.num("stride_height", sv)
        out.num("stride_width", sh)

    def read(self, src):
        for key, option in (("stride_height", "stridevertical"),
                            ("stride_width", "stridehorizontal")):
            if key in src.raw:
                src.raw[option] = src.raw[key]


def _nonneg(value):
    return None if value is None or value < 0 else value


class Padding(Field):
    """pad_* rows: -1 = automatic (the only form irc writes); the reader also takes explicit
    symmetric values, using pad_top and pad_left as DLPy's reader does."""

    def write(self, out, options):
        if "paddingheight" in options:
            raise out.fail("explicit padding has no verified table encoding (only -1 = "
                           "automatic)")
        for side in ("pad_bottom", "pad_left", "pad_right", "pad_top"):
            out.num(side, -1)

    def read(self, src):
        raw = src.raw
        raw.pop("padding", None)
        for first, second, key in (("pad_top", "pad_bottom", "paddingheight"),
                                   ("pad_left", "pad_right", "paddingwidth")):
            a, b = _nonneg(raw.get(first)), _nonneg(raw.get(second))
            if b is not None and a != b:
                raise src.fail(f"{first}={raw.get(first)} and {second}={raw.get(second)} "
                               "differ; Viya padding is symmetric")
            if a is not None:
                raw[key] = a


class PerChannel(Field):
    """A list option, one row per element (``inputopts.offsets.0``, ...); the reader already
    gathers such rows into a list under the option's name."""

    def __init__(self, key: str):
        self.key = key

    def write(self, out, options):
        for i, value in enumerate(options.get(self.key, ())):
            out.num(f"{self.key}.{i}", value, label=self.key)


class Absent(Field):
    """An option that has no known table form: writing a layer that carries it fails."""

    def __init__(self, option: str, reason: str):
        self.option, self.reason = option, reason

    def write(self, out, options):
        if self.option in options:
            raise out.fail(self.reason)


def write_rows(kind, layer, layer_id: float) -> list[tuple]:
    """The rows of one layer: its layertype, then each codec field's, or TableNotExpressible."""
    form = kind.table
    if kind.table_refusal:
        raise Rows(layer, layer_id, "").fail(kind.table_refusal)
    if form is None or form.label is None or kind.scope != IN:
        raise TableNotExpressible(f"layer {layer.name!r}: layer type {layer.kind!r} has no "
                                  "known table label/code",
                                  hint="use the buildModel/addLayer payloads in model.json")
    out = Rows(layer, layer_id, form.prefix)
    out.rows.append((layer.name, "layertype", form.label, float(form.code), layer_id))
    for field in kind.codec:
        field.write(out, layer.options)
    return out.rows


def read_rows(kind, rows: dict, lists: dict, fail) -> dict:
    """Payload options from one layer's rows (keys lower-case, prefix removed)."""
    raw = {k: num for k, (_, num) in rows.items() if num is not None}
    raw.update({k: [v[i] for i in sorted(v)] for k, v in lists.items()})
    src = Read(rows, raw, fail)
    # act, strides and padding read alike for every kind (a server table may carry them for a
    # kind irc writes no rows for); then the kind's own fields
    for field in GENERIC_READS + tuple(getattr(kind, "codec", ())):
        field.read(src)
    return raw


GENERIC_READS = (Act(), Strides(), Padding())
