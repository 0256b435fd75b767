"""One problem collector: gather every problem of a model, then raise one error listing all.

irc reports everything wrong with a model at once (a user fixes the model once, not once per
run). A stage adds ``(where, message)`` pairs while it scans, then calls :meth:`raise_if_any`
with the :class:`irc.errors.IrcError` subclass that fits; the error's ``node`` is the first
place named.

    problems = Problems()
    problems.add("conv1", "dilation_rate=(2, 2): Viya has no dilated convolution")
    problems.raise_if_any(UnsupportedAttribute, "layers Viya cannot compute: ", file=path)
"""
from __future__ import annotations

from typing import Callable, Iterator

from irc.errors import IrcError


class Problems:
    """An ordered list of (where, message); ``where`` is a layer/node name or None."""

    def __init__(self):
        self._items: list[tuple[str | None, str]] = []

    def add(self, where: str | None, message: str) -> None:
        self._items.append((where, message))

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[tuple[str | None, str]]:
        return iter(self._items)

    @property
    def first_where(self) -> str | None:
        return next((where for where, _ in self._items if where), None)

    def lines(self, place: Callable[[str], str] = str) -> list[str]:
        """One text per problem: ``"<place(where)>: <message>"`` (the message alone without
        a place)."""
        return [f"{place(where)}: {message}" if where else message
                for where, message in self._items]

    def grouped_lines(self) -> list[str]:
        """One text per distinct message, naming every place it was found, in first-seen
        order: 65 SiLUs of one network read as one line listing 65 nodes, not 65 lines."""
        places: dict[str, list[str]] = {}
        for where, message in self._items:
            places.setdefault(message, []).append(where or "")
        lines = []
        for message, wheres in places.items():
            named = [w for w in wheres if w]
            if len(wheres) == 1:
                lines.append(f"{named[0]}: {message}" if named else message)
            else:
                lines.append(f"{message} (x{len(wheres)}): {', '.join(named)}")
        return lines

    def raise_if_any(self, error: type[IrcError], headline: str, *, sep: str = "; ",
                     place: Callable[[str], str] = str, file: str | None = None,
                     hint: str | None = None, name_node: bool = True) -> None:
        """Raise ``error(headline + every problem joined by sep)`` when there is any; its
        ``node`` is the first place named (``name_node=False``: places are not nodes)."""
        if self._items:
            raise error(headline + sep.join(self.lines(place)), file=file,
                        node=self.first_where if name_node else None, hint=hint)
