"""Running `irc` as a user does, and the checks every refused input must pass."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def irc_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irc", *map(str, args)], capture_output=True,
                          text=True)


def assert_refused(result, out: Path, *words) -> None:
    """Exit 2, exactly one `irc:` message naming ``words``, no traceback, nothing written."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("irc: ") == 1
    for word in words:
        assert word in result.stderr, result.stderr
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.irc-*"))
