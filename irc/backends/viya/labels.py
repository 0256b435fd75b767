"""Class labels for ``dlImportModelWeights(labelTable=...)`` (viya-target.md §7.1).

The server wants a CAS table with ``label_id`` (int64, the 0-based output neuron) and ``label``
(fixed-length char). irc takes the labels from a list, from a ``labels.csv`` with a header row
naming ``label`` (and optionally ``label_id``, DLPy's layout), or from a text file with one label
per line (line k = neuron k).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from irc.errors import IrcError, IrcIOError

COLUMNS = ("label_id", "label")


class LabelError(IrcError):
    """The labels given for a deployment are unusable (empty, duplicated ids, wrong count)."""

    kind = "labels"


def load_labels(source) -> list[str]:
    """The labels in neuron order, from a list/tuple of strings or a file path."""
    if isinstance(source, (list, tuple)):
        labels = [str(v) for v in source]
        where = "the label list"
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise IrcIOError(f"cannot read the labels: {exc}", file=str(path)) from None
        labels = _from_csv(text, path) if path.suffix.lower() == ".csv" else _from_lines(text)
        where = str(path)
    if not labels:
        raise LabelError(f"{where} holds no labels")
    empty = [i for i, v in enumerate(labels) if not v.strip()]
    if empty:
        raise LabelError(f"{where}: label {empty[0]} is empty",
                         hint="every output neuron needs a non-empty label")
    return labels


def _from_lines(text: str) -> list[str]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _from_csv(text: str, path: Path) -> list[str]:
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    if "label" not in header:
        raise LabelError(f"{path}: the first row must name the columns, e.g. label_id,label",
                         hint="or give a .txt file with one label per line")
    at_label = header.index("label")
    at_id = header.index("label_id") if "label_id" in header else None
    found: dict[int, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise LabelError(f"{path}, line {line}: {len(row)} fields, the header has "
                             f"{len(header)}")
        if at_id is None:
            key = len(found)
        else:
            try:
                key = int(row[at_id])
            except ValueError:
                raise LabelError(f"{path}, line {line}: label_id {row[at_id]!r} is not an "
                                 "integer") from None
        if key in found:
            raise LabelError(f"{path}, line {line}: label_id {key} appears twice")
        found[key] = row[at_label]
    if sorted(found) != list(range(len(found))):
        missing = sorted(set(range(len(found))) - set(found))
        raise LabelError(f"{path}: label_id must run 0..{len(found) - 1} (0-based output "
                         f"neurons); {missing[0] if missing else 'an id'} is missing")
    return [found[k] for k in range(len(found))]


def label_length(labels: list[str]) -> int:
    """The fixed char length the ``label`` column needs: the longest label in UTF-8 bytes."""
    return max(1, max(len(v.encode("utf-8")) for v in labels))


def write_labels_csv(labels: list[str], path) -> None:
    """The CSV that is uploaded as the label table (header ``label_id,label``)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for i, label in enumerate(labels):
            writer.writerow([i, label])


def import_vars(labels: list[str]) -> list[dict]:
    """``importOptions.vars`` giving the label table the types the server expects."""
    return [{"name": "label_id", "type": "int64"},
            {"name": "label", "type": "char", "length": label_length(labels)}]
