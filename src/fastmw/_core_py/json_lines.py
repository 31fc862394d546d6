"""JSON-lines access records: one flat ASCII JSON object per line."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from typing import Any

from fastmw._core_py._common import _type_name

# --------------------------------------------------------------------------- JSON-lines access records
# Used by the access log's fast sink: one flat JSON object per line, ASCII only
# (json.dumps' ensure_ascii escaping), so any header bytes give a valid line.


def _json_string(text: str) -> str:
    """``text`` as a JSON string literal, escaped exactly like ``json.dumps`` (ensure_ascii)."""
    return json.dumps(text)


def _json_value(key: str, value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        # NaN and infinities are not JSON.
        return float.__repr__(value) if math.isfinite(value) else "null"
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, bytes):
        # Header bytes are latin-1 by ASGI; every byte maps to one code point. A subclass
        # is read for its bytes (bytes.decode, not its own methods), as the compiled twin does.
        return _json_string(bytes.decode(value, "latin-1"))
    if isinstance(value, bytearray):
        return _json_string(bytearray.decode(value, "latin-1"))
    raise TypeError(
        f"access record value for {key!r} must be None, bool, int, float, str or bytes, not {_type_name(value)}"
    )


def encode_access_record(keys: Sequence[str], values: Sequence[Any]) -> bytes:
    """One JSON object (ASCII bytes ending in a newline) pairing ``keys`` with ``values``."""
    if not isinstance(keys, (tuple, list)):
        raise TypeError(f"keys must be a tuple or list, not {_type_name(keys)}")
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"values must be a tuple or list, not {_type_name(values)}")
    if len(keys) != len(values):
        raise ValueError(f"{len(values)} values for {len(keys)} keys")
    parts = []
    for key, value in zip(keys, values, strict=True):
        if not isinstance(key, str):
            raise TypeError(f"access record key must be str, not {_type_name(key)}")
        parts.append(_json_string(key) + ":" + _json_value(key, value))
    return ("{" + ",".join(parts) + "}\n").encode("ascii")


class JsonLinesWriter:
    """Buffers JSON lines and writes them to a binary stream ``batch_lines`` at a time.

    A stream that takes part of a batch (a raw file) is given the rest. Write errors
    propagate to the caller; the failed batch is dropped, not retried.
    """

    __slots__ = ("_buffer", "_lines", "_lock", "batch_lines", "stream")

    def __init__(self, stream: Any, batch_lines: int = 64) -> None:
        if type(batch_lines) is not int or batch_lines < 1:
            raise ValueError("batch_lines must be a positive int")
        if not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream must have a write() method, not {_type_name(stream)}")
        self.stream = stream
        self.batch_lines = batch_lines
        self._buffer = bytearray()
        self._lines = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """How many lines wait in the buffer."""
        return self._lines

    def write(self, line: bytes) -> None:
        """Buffer one encoded line; write the batch out once it is full."""
        if not isinstance(line, bytes):
            raise TypeError(f"line must be bytes, not {_type_name(line)}")
        batch = None
        # Loops in several threads may share a writer: the buffer changes hands under
        # the lock, the stream is written outside it.
        with self._lock:
            self._buffer += line
            self._lines += 1
            if self._lines >= self.batch_lines:
                batch = self._take_batch()
        if batch is not None:
            _write_batch(self.stream, batch)

    def flush(self) -> None:
        """Write out the buffered lines and flush the stream."""
        with self._lock:
            batch = self._take_batch() if self._lines else None
        if batch is not None:
            _write_batch(self.stream, batch)

    def _take_batch(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._lines = 0
        return data


def _write_batch(stream: Any, data: bytes) -> None:
    """Write a batch out, then flush the stream (when it can be flushed)."""
    _write_all(stream, data)
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()


def _write_all(stream: Any, data: bytes) -> None:
    """``stream.write(data)``, again with the rest while a raw stream takes part of it; a
    write that returns no count (None) took it all, one that takes nothing raises OSError."""
    while data:
        written = stream.write(data)
        if type(written) is not int or written >= len(data):
            return
        if written <= 0:
            raise OSError(f"the stream took none of {len(data)} bytes")
        data = data[written:]
