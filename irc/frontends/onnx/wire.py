"""Reading an .onnx file without reading its weights: inline initializers memory-mapped in place.

``onnx.load`` reads the whole file, parses every weight into protobuf's memory, and every
access to ``TensorProto.raw_data`` copies it again: a 100 MB model costs three passes over its
bytes before irc has done anything. Here the file is memory-mapped and its protobuf wire
format walked just deep enough (ModelProto.graph -> GraphProto.initializer -> TensorProto
.raw_data) to find where each large weight's bytes lie. Only the rest of the file is parsed:
each such initializer comes back as an external-data reference into the .onnx file itself
(``location`` = its name, ``offset``, ``length``, and the marker key :data:`INLINE_KEY`), which
the loader memory-maps like any external data.

Field numbers (onnx.proto): ModelProto.graph = 7; GraphProto.initializer = 5; TensorProto
raw_data = 9, external_data = 13, data_location = 14; StringStringEntryProto key = 1,
value = 2. Anything unexpected in the wire format (a group, a truncated field) makes
:func:`read_mapped` return None and the caller falls back to ``onnx.load``, whose errors are
the ones users should see.
"""
from __future__ import annotations

import mmap
from pathlib import Path

import onnx

INLINE_KEY = "irc_inline"  # marks a reference made here, not by the model's author
_MIN_MAPPED_BYTES = 64 * 1024  # smaller weights stay in the proto (shape constants among them)
_GRAPH, _INITIALIZER, _RAW_DATA = 7, 5, 9
_EXTERNAL_DATA, _DATA_LOCATION, _EXTERNAL = 13, 14, 1


class _Malformed(Exception):
    pass


def _varint(buf, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise _Malformed
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf, start: int, end: int):
    """(field number, wire type, field start, payload start, payload end) for each field."""
    pos = start
    while pos < end:
        field_start = pos
        tag = buf[pos]
        if tag < 0x80:  # every field number in onnx.proto fits one tag byte
            pos += 1
        else:
            tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, next_pos = _varint(buf, pos)
        elif wire == 1:
            next_pos = pos + 8
        elif wire == 2:
            length = buf[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos)
            next_pos = pos + length
        elif wire == 5:
            next_pos = pos + 4
        else:  # groups (3, 4) are not in onnx.proto
            raise _Malformed
        if next_pos > end:
            raise _Malformed
        yield number, wire, field_start, pos, next_pos
        pos = next_pos


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _entry(key: str, value: str) -> bytes:
    body = _length_delimited(1, key.encode()) + _length_delimited(2, value.encode())
    return _length_delimited(_EXTERNAL_DATA, body)


def _tensor(buf, start: int, end: int, location: str) -> bytes:
    """The TensorProto at buf[start:end] with a large raw_data replaced by a reference."""
    fields = list(_fields(buf, start, end))
    raws = [(payload, field_end - payload) for number, _, _, payload, field_end in fields
            if number == _RAW_DATA]
    if len(raws) != 1 or raws[0][1] < _MIN_MAPPED_BYTES:  # small, absent or repeated: as is
        return bytes(buf[start:end])
    offset, length = raws[0]
    kept = [bytes(buf[field_start:field_end]) for number, _, field_start, _, field_end in fields
            if number != _RAW_DATA]
    kept += [_entry("location", location), _entry("offset", str(offset)),
             _entry("length", str(length)), _entry(INLINE_KEY, "1"),
             _encode_varint(_DATA_LOCATION << 3) + _encode_varint(_EXTERNAL)]  # last one wins
    return b"".join(kept)


def _graph(buf, start: int, end: int, location: str) -> bytes:
    out = []
    for number, wire, field_start, payload, field_end in _fields(buf, start, end):
        if number == _INITIALIZER and wire == 2:
            out.append(_length_delimited(_INITIALIZER, _tensor(buf, payload, field_end,
                                                               location)))
        else:
            out.append(bytes(buf[field_start:field_end]))
    return b"".join(out)


def read_mapped(path: Path) -> onnx.ModelProto | None:
    """The model at ``path`` with its large inline initializers turned into references into
    the file (see the module docstring), or None when the file is not one this reader walks."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            out = []
            for number, wire, field_start, payload, field_end in _fields(buf, 0, len(buf)):
                if number == _GRAPH and wire == 2:
                    out.append(_length_delimited(_GRAPH, _graph(buf, payload, field_end,
                                                                path.name)))
                else:
                    out.append(bytes(buf[field_start:field_end]))
    except (_Malformed, OSError, ValueError, IndexError):  # ValueError: an empty file
        return None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(b"".join(out))
    except Exception:  # protobuf's DecodeError and friends: let onnx.load report it
        return None
    return model
