"""Fuzz suite fixtures: seeds built once per session, and the figures table at the end.

Environment:
  IRC_FUZZ_ITERATIONS=N   cases per format (default: each format's default_iterations)
  IRC_FUZZ_SEED=S         base seed of the mutations (default 0)
  IRC_FUZZ_GUARD_BYTES=B  address-space head room per case (default 6 GiB)
  IRC_FUZZ_CASE_TIMEOUT=S a case still running after S seconds (120) is a hang: every stack is
                          dumped to the terminal and the session ends
  IRC_FUZZ_KERAS_HUGE=1   also declare huge Keras layer sizes (TensorFlow takes ~10 s each)
"""
from __future__ import annotations

import os

import pytest

from tests.fuzz.harness import STATS
from tests.fuzz.plugins import discover


class SeedCache:
    def __init__(self, factory):
        self.factory = factory
        self.formats = discover()
        self.seeds = {}

    def get(self, fmt_name: str, seed_name: str):
        key = (fmt_name, seed_name)
        if key not in self.seeds:
            folder = self.factory.mktemp(f"seed-{fmt_name}-{seed_name}")
            self.seeds[key] = self.formats[fmt_name].build_seed(seed_name, folder / "files")
        return self.seeds[key]


@pytest.fixture(scope="session")
def fuzz_seeds(tmp_path_factory) -> SeedCache:
    return SeedCache(tmp_path_factory)


def pytest_configure(config):
    """Where the hang watchdog writes: the terminal's stderr as it was before pytest captured
    it (a private pytest attribute; sys.__stderr__ where it is missing)."""
    from tests.fuzz import harness

    capman = config.pluginmanager.getplugin("capturemanager")
    try:
        fd = capman._global_capturing.err.targetfd_save  # noqa: SLF001
        harness.WATCHDOG_FILE = os.fdopen(os.dup(fd), "w")
    except (AttributeError, OSError, TypeError):
        pass


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    table = STATS.table()
    if table:
        terminalreporter.write_sep("=", "irc fuzz figures")
        terminalreporter.write_line(table)
