"""The one error model of irc.

Every user-facing failure is an :class:`IrcError` carrying the file, the layer or node, and a hint
saying what to do. The CLI prints ``str(err)`` and exits 2 (1 for :class:`VerificationFailed`);
tracebacks are shown only with ``--debug``.
"""
from __future__ import annotations


class IrcError(Exception):
    """Base of every error irc reports to a user."""

    exit_code = 2
    kind = "error"

    def __init__(self, message: str, *, file: str | None = None, node: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.node = node
        self.hint = hint

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.node:
            where.append(f"node {self.node!r}")
        text = f"{': '.join(where)}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class InvalidModel(IrcError):
    """The input is not a readable model of the format it claims to be."""

    kind = "invalid model"


class UnsupportedOp(IrcError):
    """One or more source ops/layers have no handler; the message lists every one."""

    kind = "unsupported op"


class UnsupportedAttribute(IrcError):
    """An op is supported but one of its attribute values is not."""

    kind = "unsupported attribute"


class InputShapeNeeded(UnsupportedAttribute):
    """The source does not record a size irc needs (an input shape): the user gives it
    (``--input-shape``, ``input_shape=``). A subclass of UnsupportedAttribute only so that
    callers catching that older category still catch it; its kind is its own."""

    kind = "input shape needed"


class UsageError(IrcError):
    """An option names something that does not exist (a pass, an executor option key, a dump
    format); the message lists the valid names."""

    kind = "usage"


class ViyaCannotExpress(IrcError):
    """The source computes something no Viya layer computes; converting would change numbers."""

    kind = "Viya cannot express"


class VerificationFailed(IrcError):
    """The emitted model, re-executed, does not match the source within tolerance."""

    exit_code = 1
    kind = "verification failed"


class IrcIOError(IrcError):
    """Reading or writing a file failed (missing input, output exists, disk full)."""

    kind = "I/O"


class GraphInvalid(IrcError):
    """The IR failed validation; raised with the name of the pass that broke it."""

    kind = "internal: invalid graph"
