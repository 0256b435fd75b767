"""Viya kinds irc neither emits nor computes, registered with the reason so that every consumer
(payload check, executor, table, export) refuses them by name instead of falling through."""
from __future__ import annotations

from .base import OUT, Kind, TableForm
from .registry import register

OUT_OF_SCOPE = "out of scope for irc (viya-target.md §3.2)"

# name -> layertype code from DLPy's reader (0: none known)
_CODES = (("scale", 12), ("keypoints", 13), ("fcmp", 15), ("channelshuffle", 18),
          ("segmentation", 19), ("split", 0), ("layernorm", 0), ("mhattention", 0),
          ("projection", 0), ("cluster", 0), ("survival", 0), ("closs", 0),
          ("regionproposal", 0), ("roipooling", 0), ("fastrcnn", 0))


class Declared(Kind):
    scope, why = OUT, OUT_OF_SCOPE

    def __init__(self, name: str, code: int):
        self.name = name
        self.table = TableForm(code, None) if code else None


for _name, _code in _CODES:
    register(Declared(_name, _code))
