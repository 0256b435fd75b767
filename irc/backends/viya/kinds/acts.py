"""Viya's activation vocabulary: the act strings, their aliases and their model-table labels and
codes (viya-target.md §4.5). The kinds' table codec and the readers look activations up here.
"""
from __future__ import annotations

from dataclasses import dataclass


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




def act_name(text: str) -> str:
    """An act string with aliases resolved (lower-cased)."""
    low = str(text).lower()
    return ACT_ALIASES.get(low, low)


def act_from_label(label: str) -> str | None:
    """The activation a model-table label names, by DLPy's substring rules, or None."""
    low = (label or "").strip().lower()
    return next((a.name for a in ACTIVATIONS.values() for needle in a.label_match
                 if needle in low), None)


def act_by_code(code: int) -> str | None:
    return next((a.name for a in ACTIVATIONS.values() if a.code == code), None)
