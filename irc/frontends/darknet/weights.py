"""Darknet's binary ``.weights``: a header, then every layer's float32 arrays in cfg order.

Header (parser.c ``load_weights_upto``): major, minor, revision as int32, then the number of
images seen in training, an int64 when ``major*10 + minor >= 2`` (and neither is >= 1000),
else an int32. A major or minor above 1000 is darknet's "transposed" marker: it then
transposes every [connected] weight matrix as it loads it. The floats carry no shapes or
names, so the .cfg alone says how they divide; a file whose size is not what the .cfg implies
was written for another net (or is truncated) and is refused with both sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irc.errors import InvalidModel, IrcIOError


@dataclass
class WeightsHeader:
    major: int
    minor: int
    revision: int
    seen: int
    size: int  # bytes of the header

    @property
    def transposed(self) -> bool:
        """Darknet's marker for [connected] matrices stored (inputs, outputs)."""
        return self.major > 1000 or self.minor > 1000


def header_size(major: int, minor: int) -> int:
    wide = (major * 10 + minor) >= 2 and major < 1000 and minor < 1000
    return 12 + (8 if wide else 4)


class WeightsFile:
    """The floats after the header, handed out in order by :meth:`take`."""

    def __init__(self, path):
        self.path = Path(path)
        self.label = str(path)
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise IrcIOError(f"cannot read the .weights file: {exc.strerror or exc}",
                             file=self.label) from None
        self.header = self.header_of(raw, self.label)
        size = self.header.size
        body = len(raw) - size
        self.floats = np.frombuffer(raw, "<f4", count=body // 4, offset=size)
        self.trailing = body % 4  # a size no whole number of floats fills
        self.file_bytes = len(raw)
        self.cursor = 0

    @staticmethod
    def header_of(raw: bytes, label: str) -> WeightsHeader:
        if len(raw) < 16:
            raise InvalidModel(f"{len(raw)} bytes: too short for a darknet .weights header",
                               file=label)
        major, minor, revision = (int(v) for v in np.frombuffer(raw, "<i4", count=3))
        size = header_size(major, minor)
        if len(raw) < size:
            raise InvalidModel(f"{len(raw)} bytes: too short for a darknet .weights header",
                               file=label)
        seen = int(np.frombuffer(raw, "<i8" if size == 20 else "<i4", count=1, offset=12)[0])
        return WeightsHeader(major, minor, revision, seen, size)

    def take(self, count: int) -> np.ndarray | None:
        """The next ``count`` floats, or None past the end (the size check reports it)."""
        end = self.cursor + count
        chunk = self.floats[self.cursor:end] if end <= len(self.floats) else None
        self.cursor = end
        return chunk

    def check_size(self, what: str) -> None:
        """Refuse unless the floats taken are exactly the file: expected vs actual bytes."""
        expected = self.header.size + 4 * self.cursor
        if expected != self.file_bytes:
            raise InvalidModel(
                f"the .weights file has {self.file_bytes} bytes, the .cfg implies {expected} "
                f"({self.header.size}-byte header + {self.cursor} float32 for {what}); "
                + ("it is truncated" if self.file_bytes < expected else
                   f"{self.file_bytes - expected} bytes are left over"),
                file=self.label, hint="pass the .weights trained with this .cfg (and the "
                                      ".cfg's own width/height: they do not change the "
                                      "convolution weights, but they do change [connected])")


def write_header(major: int = 0, minor: int = 2, revision: int = 0, seen: int = 0) -> bytes:
    size = header_size(major, minor)
    return np.array([major, minor, revision], "<i4").tobytes() + \
        np.array([seen], "<i8" if size == 20 else "<i4").tobytes()


def write_weights(path, arrays, major: int = 0, minor: int = 2, revision: int = 0,
                  seen: int = 0) -> Path:
    """Write ``arrays`` (each flattened, in order) as a darknet .weights file."""
    path = Path(path)
    head = write_header(major, minor, revision, seen)
    with open(path, "wb") as f:
        f.write(head)
        for a in arrays:
            f.write(np.ascontiguousarray(a, "<f4").tobytes())
    return path
