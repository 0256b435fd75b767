"""Darknet's ``.cfg`` text: ``[section]`` headers, each followed by ``key=value`` lines.

Read as darknet's own parser (parser.c ``read_cfg``) reads it: every whitespace character is
removed from a line before it is looked at (so ``anchors = 1, 2`` is the value ``1,2``), lines
that are empty or start with ``#`` or ``;`` are comments. Where darknet only prints a warning
and carries on (a line without ``=``, an option before the first section) irc refuses, naming
the line: such a file does not mean what its author thought. A key given twice in one section
keeps its first value, as darknet's ``option_find`` does, and the converter warns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from irc.errors import InvalidModel, IrcIOError


@dataclass
class Section:
    kind: str  # the header without brackets, e.g. "convolutional"
    line: int  # 1-based line of the header
    options: dict[str, str] = field(default_factory=dict)  # first value of each key, in order
    lines: dict[str, int] = field(default_factory=dict)  # key -> line of that value
    repeated: list[str] = field(default_factory=list)  # keys given more than once
    used: set[str] = field(default_factory=set)  # keys a handler read

    def where(self) -> str:
        return f"[{self.kind}] at line {self.line}"


@dataclass
class DarknetCfg:
    path: str
    sections: list[Section]

    @property
    def net(self) -> Section:
        return self.sections[0]

    @property
    def layers(self) -> list[Section]:
        """Every section after [net]: darknet's layers, numbered from 0 as routes count them."""
        return self.sections[1:]


def _strip(line: str) -> str:
    return "".join(line.split())


def parse_cfg_text(text: str, label: str) -> DarknetCfg:
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip(raw)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                raise InvalidModel(f"line {number}: a section header must read [name], got "
                                   f"{raw.strip()!r}", file=label)
            sections.append(Section(line[1:-1], number))
            continue
        key, eq, value = line.partition("=")
        if not eq or not key:
            raise InvalidModel(f"line {number}: expected key=value or [section], got "
                               f"{raw.strip()!r}", file=label,
                               hint="fix the line (darknet itself skips it with a warning)")
        if not sections:
            raise InvalidModel(f"line {number}: option {key!r} comes before the first "
                               "[section]", file=label, hint="the file must start with [net]")
        section = sections[-1]
        if key in section.options:
            section.repeated.append(key)
            continue
        section.options[key] = value
        section.lines[key] = number
    if not sections:
        raise InvalidModel("no [section] found: not a darknet .cfg", file=label)
    if sections[0].kind not in ("net", "network"):
        raise InvalidModel(f"the first section is [{sections[0].kind}] at line "
                           f"{sections[0].line}; darknet needs [net] (or [network]) first",
                           file=label)
    if len(sections) == 1:
        raise InvalidModel("the .cfg has a [net] section and no layer", file=label)
    return DarknetCfg(label, sections)


def read_cfg(path) -> DarknetCfg:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise IrcIOError(f"cannot read the .cfg: {exc.strerror or exc}", file=str(path)) from None
    return parse_cfg_text(text, str(path))


class Options:
    """Typed reads of one section's options; a bad value is refused naming key and line."""

    def __init__(self, section: Section, label: str):
        self.section = section
        self.label = label

    def _raw(self, key: str) -> str | None:
        self.section.used.add(key)
        return self.section.options.get(key)

    def bad(self, key: str, expected: str) -> InvalidModel:
        line = self.section.lines.get(key, self.section.line)
        return InvalidModel(f"line {line}: {self.section.where()}: {key}="
                            f"{self.section.options.get(key)!r} is not {expected}",
                            file=self.label, node=self.section.kind)

    def int(self, key: str, default: int | None = None) -> int | None:
        raw = self._raw(key)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            # darknet reads with atoi: "2.0" would be 2; irc refuses what atoi would truncate
            raise self.bad(key, "an integer") from None

    def float(self, key: str, default: float | None = None) -> float | None:
        raw = self._raw(key)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise self.bad(key, "a number") from None

    def str(self, key: str, default: str | None = None) -> str | None:
        raw = self._raw(key)
        return default if raw is None else raw

    def ints(self, key: str) -> list[int] | None:
        raw = self._raw(key)
        if raw is None:
            return None
        try:
            return [int(v) for v in raw.split(",") if v != ""]
        except ValueError:
            raise self.bad(key, "a comma-separated list of integers") from None
