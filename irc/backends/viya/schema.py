"""The Viya layer vocabulary, looked up by name: which kinds exist, their options and defaults,
table codes, weight order, and the activation strings.

Each kind's facts and facets live in its own module of :mod:`irc.backends.viya.kinds` (one place
per kind); the activation vocabulary in :mod:`irc.backends.viya.kinds.acts`. This module is the
look-up every consumer imports: lowering's output (model.py weight order, payloads.py option
check), the model-table writer (table.py), the reference executor and the Viya reader/exporter.
"""
from __future__ import annotations

from irc.backends.viya.kinds.acts import (ACT_ALIASES, ACTIVATIONS, COMPUTED_ACTS,  # noqa: F401
                                          Activation, act_by_code, act_from_label, act_name)
from irc.backends.viya.kinds.base import (AUTOMATIC, IN, OPEN, OUT, PER_CHANNEL,  # noqa: F401
                                          REQUIRED, WINDOW, Kind, TableForm)
from irc.backends.viya.kinds.catalog import KINDS


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


def by_code(code: int) -> str | None:
    return next((k.name for k in KINDS.values() if k.table and k.table.code == code), None)


def by_label(label: str) -> str | None:
    return next((k.name for k in KINDS.values() if k.table and k.table.label == label), None)
