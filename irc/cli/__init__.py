"""The `irc` command line. Heavy imports happen inside commands so `irc --help` starts fast.

Exit codes: 0 success, 1 verification mismatch, 2 any other user-facing error (one message,
no traceback unless --debug); 130/143 interrupted (Ctrl-C/SIGTERM), 141 output pipe closed.
"""
from __future__ import annotations

import sys
import traceback

from irc.cli.options import _input_shapes  # noqa: F401 - tests and callers use irc.cli._input_shapes
from irc.cli.parser import build_parser
from irc.errors import IrcError


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `finally`/cleanup (the atomic writer's) runs."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None) -> int:
    import signal

    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading_is_main() else None
    try:
        return args.func(args)
    except IrcError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"irc: {exc.kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print("irc: interrupted; nothing was written", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    except BrokenPipeError:  # `irc ops | head`: the reader stopped; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 141
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def threading_is_main() -> bool:
    """Signal handlers can only be installed from the main thread (not in threaded callers)."""
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
