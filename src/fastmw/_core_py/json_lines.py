"""JSON-lines access records: one flat ASCII JSON object per line."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from typing import Any

from fastmw._core_py._common import _type_name

# How many lines a JsonLinesWriter holds by default before it drops (about 16 MiB of records).
DEFAULT_MAX_PENDING = 65536

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
    """Buffers JSON lines for a binary stream and writes them out whole.

    ``write`` only buffers (no I/O) and says when its line completes a batch of ``batch_lines``
    (once per batch, so a caller wakes its writing thread once, not on every later line); with
    ``max_pending`` lines waiting, a line is dropped and counted in ``dropped``. ``flush``
    writes what waits; a stream that takes part of it is given the rest. When a write fails,
    the part not written stays, first in line for the next flush (so a line cut short by a
    full disk is completed before anything else is written), and the error propagates; lines
    buffered meanwhile that take the total past ``max_pending`` are dropped, newest first.
    The buffer changes hands under a lock (loops in several threads may share a writer);
    ``take`` then ``write_out`` let a caller write outside it.
    """

    __slots__ = (
        "_buffer",
        "_carry",
        "_carry_lines",
        "_lines",
        "_lock",
        "batch_lines",
        "dropped",
        "max_pending",
        "stream",
    )

    def __init__(self, stream: Any, batch_lines: int = 64, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if type(batch_lines) is not int or batch_lines < 1:
            raise ValueError("batch_lines must be a positive int")
        if type(max_pending) is not int or max_pending < batch_lines:
            raise ValueError("max_pending must be an int of at least batch_lines")
        if not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream must have a write() method, not {_type_name(stream)}")
        self.stream = stream
        self.batch_lines = batch_lines
        self.max_pending = max_pending
        self.dropped = 0
        self._buffer = bytearray()
        self._lines = 0
        # What a failed write left: written before anything else, then counted as pending.
        self._carry = b""
        self._carry_lines = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """How many lines wait (buffered, or left by a failed write)."""
        return self._lines + self._carry_lines

    def write(self, line: bytes) -> bool:
        """Buffer one encoded line; True when it completes a batch (the buffer reaches
        ``batch_lines`` lines). Dropped (and counted) when ``max_pending`` lines wait."""
        if not isinstance(line, bytes):
            raise TypeError(f"line must be bytes, not {_type_name(line)}")
        with self._lock:
            if self._lines + self._carry_lines >= self.max_pending:
                self.dropped += 1
                return False
            self._buffer += line
            self._lines += 1
            return self._lines == self.batch_lines

    def take(self) -> bytes:
        """Everything waiting (what a failed write left first), removed from the writer."""
        with self._lock:
            data = self._carry + self._buffer if self._carry else bytes(self._buffer)
            self._buffer = bytearray()
            self._lines = 0
            self._carry = b""
            self._carry_lines = 0
            return data

    def write_out(self, data: bytes) -> None:
        """Write ``data`` (from ``take``) and flush the stream; on an error the part not
        written is kept for the next flush and the error propagates."""
        if not isinstance(data, bytes):
            raise TypeError(f"data must be bytes, not {_type_name(data)}")
        done = 0
        try:
            while done < len(data):
                written = self.stream.write(data[done:] if done else data)
                if type(written) is not int or written >= len(data) - done:
                    done = len(data)
                    break
                if written <= 0:
                    raise OSError(f"the stream took none of {len(data) - done} bytes")
                done += written
            flush = getattr(self.stream, "flush", None)
            if flush is not None:
                flush()
        except BaseException:
            if done < len(data):
                rest = data[done:]
                with self._lock:
                    self._carry = rest + self._carry
                    self._carry_lines += rest.count(b"\n")
                    self._drop_over_bound()
            raise

    def _drop_over_bound(self) -> None:
        """With what a failed write gave back, keep at most ``max_pending`` lines: lines
        buffered while the write was under way did not count what it held, so the newest
        beyond the bound are dropped (and counted), as they would have been had it stayed."""
        over = self._lines + self._carry_lines - self.max_pending
        if over <= 0:
            return
        over = min(over, self._lines)
        end = len(self._buffer)
        for _ in range(over):  # each buffered line ends with its newline
            end = self._buffer.rfind(b"\n", 0, end - 1) + 1 if end > 1 else 0
        del self._buffer[end:]
        self._lines -= over
        self.dropped += over

    def flush(self) -> None:
        """Write out everything waiting (``write_out(take())``)."""
        if self._lines or self._carry:
            self.write_out(self.take())

    def discard(self) -> int:
        """Drop everything waiting, count it in ``dropped``, and say how many lines that was."""
        with self._lock:
            lost = self._lines + self._carry_lines
        self.take()
        with self._lock:
            self.dropped += lost
        return lost
