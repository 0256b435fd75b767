"""Lowering's entry point, kept at its historical import path.

The lowering itself lives in :mod:`irc.backends.viya.lowering`: a registry keyed by IR op
(registry.py), the shared state (context.py), one module per family of ops, and the driver
(driver.py).
"""
from __future__ import annotations

from irc.backends.viya.lowering.driver import lower

__all__ = ["lower"]
