"""Pass instruments: printing, dumping, timing and op-count diffs around every pass.

They observe the pass manager's run; passes themselves never print or time anything.
Switch them on from the API (``irc.compile(..., instruments=[...])``), the CLI
(``--dump-after``, ``--print-after``, ``--time-passes``) or the environment
(``IRC_DUMP_AFTER``, ``IRC_DUMP_DIR``, ``IRC_DUMP_FORMAT``, ``IRC_PRINT_AFTER``, ``IRC_TIME_PASSES``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from irc.ir.graph import Graph
from irc.ir.printer import format_graph
from irc.passes.manager import Instrument

DUMP_FORMATS = ("txt", "dot", "svg", "onnx")


def _selected(passes, name: str) -> bool:
    return passes is None or name in passes


def _pass_set(text: str | None):
    """'all' -> None (every pass); 'a,b' -> {'a', 'b'}."""
    if not text or text == "all":
        return None
    return {p.strip() for p in text.split(",") if p.strip()}


class PrintAfter(Instrument):
    """Print the graph as text after each selected pass (all when ``passes`` is None)."""

    def __init__(self, passes=None, stream=None):
        self.passes, self.stream = passes, stream or sys.stderr

    def after_pass(self, index, name, graph, changed, seconds):
        if _selected(self.passes, name):
            state = "changed" if changed else "unchanged"
            self.stream.write(f"// after {index + 1:03d}_{name} ({state})\n{format_graph(graph)}\n")


def write_graph(graph: Graph, stem: Path, formats) -> list[Path]:
    """Write ``graph`` as ``stem.<fmt>`` for each format; returns the paths."""
    written = []
    dot_text = None
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        if fmt == "txt":
            path.write_text(format_graph(graph) + "\n", encoding="utf-8")
        elif fmt in ("dot", "svg"):
            from irc.ir.dot import render_svg, to_dot

            dot_text = dot_text or to_dot(graph)
            path.write_text(dot_text if fmt == "dot" else render_svg(dot_text), encoding="utf-8")
        elif fmt == "onnx":
            import onnx

            from irc.ir.onnx_export import to_onnx

            onnx.save(to_onnx(graph), str(path))
        else:
            raise ValueError(f"unknown dump format {fmt!r}; use {', '.join(DUMP_FORMATS)}")
        written.append(path)
    return written


class DumpAfter(Instrument):
    """Write the graph after each selected pass to ``NNN_<pass>.<fmt>`` (run order sorts)."""

    def __init__(self, directory, passes=None, formats=("txt",)):
        self.directory = Path(directory)
        self.passes = passes
        self.formats = tuple(formats)
        bad = set(self.formats) - set(DUMP_FORMATS)
        if bad:
            raise ValueError(f"unknown dump format(s) {sorted(bad)}; use {', '.join(DUMP_FORMATS)}")
        self.written: list[Path] = []

    def before_pass(self, index, name, graph):
        if index == 0:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.written += write_graph(graph, self.directory / "000_input", self.formats)

    def after_pass(self, index, name, graph, changed, seconds):
        if _selected(self.passes, name):
            self.written += write_graph(graph, self.directory / f"{index + 1:03d}_{name}",
                                        self.formats)


class Timing(Instrument):
    """Seconds spent in each pass."""

    def __init__(self):
        self.seconds: list[tuple[str, float]] = []

    def after_pass(self, index, name, graph, changed, seconds):
        self.seconds.append((name, seconds))

    def report(self) -> str:
        total = sum(s for _, s in self.seconds) or 1e-12
        lines = [f"{name:<34} {s * 1e3:9.2f} ms {100 * s / total:5.1f}%" for name, s in self.seconds]
        return "\n".join(lines + [f"{'total':<34} {total * 1e3:9.2f} ms"])


class OpCountDiff(Instrument):
    """How each pass changed the op counts, e.g. ``fold_batchnorm: BatchNormalization -53``."""

    def __init__(self):
        self.diffs: list[tuple[str, dict[str, int]]] = []
        self._before: dict[str, int] = {}

    def before_pass(self, index, name, graph):
        self._before = graph.op_counts()

    def after_pass(self, index, name, graph, changed, seconds):
        after = graph.op_counts()
        diff = {op: after.get(op, 0) - self._before.get(op, 0)
                for op in sorted(set(after) | set(self._before))}
        self.diffs.append((name, {op: d for op, d in diff.items() if d}))

    def report(self) -> str:
        lines = []
        for name, diff in self.diffs:
            text = ", ".join(f"{op} {d:+d}" for op, d in diff.items()) or "no change"
            lines.append(f"{name:<34} {text}")
        return "\n".join(lines)


def instruments_from_env(environ=None) -> list[Instrument]:
    env = os.environ if environ is None else environ
    found: list[Instrument] = []
    if env.get("IRC_DUMP_AFTER"):
        formats = env.get("IRC_DUMP_FORMAT", "txt").split(",")
        found.append(DumpAfter(env.get("IRC_DUMP_DIR", "irc-dumps"),
                               _pass_set(env["IRC_DUMP_AFTER"]), formats))
    if env.get("IRC_PRINT_AFTER"):
        found.append(PrintAfter(_pass_set(env["IRC_PRINT_AFTER"])))
    if env.get("IRC_TIME_PASSES"):
        found.append(Timing())
    return found
