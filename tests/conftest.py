"""Shared test settings: tests marked ``slow`` (full-size real networks) run only with
``IRC_SLOW=1``; everything else runs in every CI run."""
from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a full-size network; run with IRC_SLOW=1")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("IRC_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow (full-size network): set IRC_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
