"""Every kind module, imported once so that each registers its kinds (order = table order).

A new Viya kind is one module in this package plus one name here.
"""
from __future__ import annotations

from irc.backends.viya.kinds import (input, conv, pool, dense, recurrent, batchnorm,  # noqa: F401
                                     merge, reshape, detection, declared)
from irc.backends.viya.kinds.registry import KINDS

__all__ = ["KINDS"]
