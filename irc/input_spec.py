"""What the Viya input layer does to the raw image before the source model sees it.

Viya's input layer computes ``y = (x*scale - offsets[c]) / normstds[c]`` per channel c on
images it holds as B, G, R (viya-semantics.md §2); ``channel_order`` says which order the
source was trained on. One :class:`InputSpec` is built from the command line
(irc/cli/options.py) or the API's ``input_options`` and validated here, once; lowering
(irc/backends/viya/lowering/inputs.py) checks the lengths against the channel count and
writes the input layer; verification reads back what model.json records
(:meth:`InputSpec.recorded`).

No numpy: the CLI builds one before anything heavy loads.
"""
from __future__ import annotations

from dataclasses import InitVar, dataclass

from irc.errors import UnsupportedAttribute
from irc.utils.float32 import float32_number

CHANNEL_ORDERS = ("bgr", "rgb")  # Viya's own order first
FIELDS = ("scale", "offsets", "normstds", "channel_order")


@dataclass(frozen=True)
class InputSpec:
    """Input preprocessing; ``offsets``/``normstds`` in the source's channel order, None for
    Viya's defaults (0 and 1 on every channel)."""

    scale: float = 1.0
    offsets: tuple[float, ...] | None = None
    normstds: tuple[float, ...] | None = None
    channel_order: str = "bgr"
    # How the user spelled the options, for messages: "" (API keys) or "--" (CLI flags).
    spelling: InitVar[str] = ""

    def __post_init__(self, spelling: str):
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "scale", _numbers(self.scale, spelling + "scale", one=True)[0])
        for key in ("offsets", "normstds"):
            if getattr(self, key) is not None:
                set_(self, key, _numbers(getattr(self, key), spelling + key))
        for key, values, divisor in (("scale", (self.scale,), True),
                                     ("offsets", self.offsets or (), False),
                                     ("normstds", self.normstds or (), True)):
            option = spelling + key
            if divisor and 0.0 in values:
                raise UnsupportedAttribute(f"{option} has a zero: "
                                           + ("it would erase the input" if key == "scale"
                                              else "Viya divides by it"))
            if not all(float32_number(v, divisor) for v in values):
                raise UnsupportedAttribute(f"{option} {_text(values)} is outside float32, in "
                                           "which Viya computes",
                                           hint="use values of magnitude between 1.2e-38 and "
                                                "3.4e38")
        if self.channel_order not in CHANNEL_ORDERS:
            flag = "--channel-order" if spelling else "channel_order"
            raise UnsupportedAttribute(f"{flag} {self.channel_order!r} is not one of "
                                       f"{CHANNEL_ORDERS}",
                                       hint="give the order the source model was trained on")

    @classmethod
    def of(cls, options: "InputSpec | dict | None") -> "InputSpec":
        """An InputSpec from the API's ``input_options`` (a dict, kept for compatibility)."""
        if options is None:
            return cls()
        if isinstance(options, InputSpec):
            return options
        unknown = sorted(set(options) - set(FIELDS))
        if unknown:
            raise UnsupportedAttribute(f"input_options {unknown} are not among {list(FIELDS)}")
        return cls(**{k: v for k, v in options.items() if v is not None})

    @property
    def is_default(self) -> bool:
        return self == InputSpec()

    def per_channel(self, channels: int) -> tuple[list[float], list[float]] | None:
        """(offsets, normstds) for ``channels`` channels in Viya's B,G,R order, or None when a
        given list has another length."""
        offsets = list(self.offsets) if self.offsets is not None else [0.0] * channels
        stds = list(self.normstds) if self.normstds is not None else [1.0] * channels
        if len(offsets) != channels or len(stds) != channels:
            return None
        if self.channel_order == "rgb":  # given in R,G,B order; Viya holds B,G,R
            offsets, stds = offsets[::-1], stds[::-1]
        return offsets, stds

    @classmethod
    def recorded(cls, payloads: dict) -> "InputSpec":
        """The spec a model.json records: its input layer's options (in Viya's order) and
        ``input.source_channel_order`` (absent: bgr)."""
        layer = next(c["layer"] for c in payloads["addLayer"] if c["layer"]["type"] == "input")
        order = payloads.get("input", {}).get("source_channel_order", "bgr")
        offsets, stds = layer.get("offsets"), layer.get("normstds")
        if order == "rgb":  # back to the source's order
            offsets = offsets[::-1] if offsets is not None else None
            stds = stds[::-1] if stds is not None else None
        return cls(layer.get("scale", 1.0), offsets, stds, order)


def _numbers(value, option: str, one: bool = False) -> tuple[float, ...]:
    iterable = hasattr(value, "__iter__") and not isinstance(value, (str, bytes))
    values = tuple(value) if iterable else (value,)
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        numbers = ()
    if not numbers or (one and len(numbers) != 1):
        raise UnsupportedAttribute(f"{option} {value!r} must be "
                                   + ("one number" if one else "a list of numbers"))
    return numbers


def _text(values) -> str:
    return ",".join(f"{v:g}" for v in values)
