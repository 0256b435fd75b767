"""The Caffe layer registry and what its handlers share with the converter that runs them.

The registry lives here, not in the converter: handler modules (``layers``, ``inputs``) import
this module, and the converter imports the handler modules; nothing imports back.
"""
from __future__ import annotations

from irc.frontends.registry import HandlerRegistry

CAFFE_LAYERS = HandlerRegistry("Caffe")
LABEL = "label"  # shape marker of a data layer's label top (absent at inference)


class Skip(Exception):
    """A layer reads a tensor an earlier (already reported) problem left undefined."""
