"""The detection layer (YOLO v1/v2, viya-semantics.md §15b)."""
from __future__ import annotations

from .base import OUT, Kind, TableForm
from .registry import register


@register
class Detection(Kind):
    name = "detection"
    table = TableForm(11, "detectionopts", "Detection Layer")
    scope, why = OUT, "out of scope for irc (viya-target.md §3.2)"
