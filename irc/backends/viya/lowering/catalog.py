"""Every lowering module, imported once so that each registers its handlers and hooks.

A new family of IR ops (or a Viya kind that needs lowering) is one module in this package plus
one name here; the driver and the context stay as they are.
"""
from __future__ import annotations

from irc.backends.viya.lowering import (conv_pool, dense, detection, inputs,  # noqa: F401
                                        merge, recurrent, shape, unit_axis)
from irc.backends.viya.lowering.registry import LOWERINGS

__all__ = ["LOWERINGS"]
