"""Trace context: W3C Trace Context Level 1 and the Level 2 random flag: ids and traceparent.

traceparent ``vv-<32 hex trace id>-<16 hex parent id>-<2 hex flags>``, OWS around it ignored:
version 00 is exactly 55 characters; a higher version (not ff) is read at the same offsets
and may go on after a dash. Anything else, or several traceparent headers, starts a new
trace (and drops the tracestate). Ids are lower-case hex and never all zero.
"""

from __future__ import annotations

import os
import re

from fastmw._core_py._common import _shown, _type_name
from fastmw._core_py.tracestate import OWS, _text_of

TRACEPARENT_LENGTH = 55
RANDOM_POOL = 4096
FLAG_SAMPLED = 0x01
FLAG_RANDOM = 0x02
# The flags Level 2 defines; the others are sent as zero.
KNOWN_FLAGS = 0x03
TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"
# version, trace id, parent id, flags: the first 55 characters of every version.
FIELDS = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
ZERO_TRACE = b"0" * 32
ZERO_SPAN = b"0" * 16
HEX_ID = re.compile(r"[0-9a-f]+")

# --------------------------------------------------------------------------- random ids


# CSPRNG bytes (os.urandom) handed out a few at a time; emptied in a forked child so
# parent and child never hand out the same ids.
_pool = bytearray()


def _forget_pool() -> None:
    del _pool[:]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _random_hex(size: int) -> str:
    while True:
        if len(_pool) < size:
            _pool[:] = os.urandom(RANDOM_POOL)
        raw = _pool[-size:]
        del _pool[-size:]
        if any(raw):
            return raw.hex()


def new_trace_id() -> str:
    """A random (CSPRNG) trace id: 32 lower-case hex characters, never all zero."""
    return _random_hex(16)


def new_span_id() -> str:
    """A random (CSPRNG) span id: 16 lower-case hex characters, never all zero."""
    return _random_hex(8)


# --------------------------------------------------------------------------- traceparent


def _fields(raw: bytes) -> tuple[str, str, int] | None:
    """(trace id, parent id, flags) of a valid traceparent value, or None."""
    value = raw.strip(OWS)
    match = FIELDS.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == b"00":
        if len(value) != TRACEPARENT_LENGTH:
            return None
    elif version == b"ff" or (len(value) > TRACEPARENT_LENGTH and value[TRACEPARENT_LENGTH] != 0x2D):
        return None
    if trace_id == ZERO_TRACE or parent_id == ZERO_SPAN:
        return None
    return trace_id.decode("ascii"), parent_id.decode("ascii"), int(flags, 16)


def parse_traceparent(value: str | bytes) -> tuple[str, str, int] | None:
    """``(trace_id, parent_id, flags)`` of a valid ``traceparent`` value (str or bytes), else None.

    ``flags`` is the header's byte as sent; surrounding spaces and tabs are ignored.
    """
    raw = _text_of(value, "traceparent")
    return None if raw is None else _fields(raw)


def _checked_id(value: object, size: int, what: str) -> str:
    """A valid id as an exact str: a str subclass is read for its characters (its own
    ``__len__``, ``__eq__`` and methods are not called), as the compiled twin reads them."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {_type_name(value)}")
    text = str.__str__(value)
    if not (len(text) == size and text.isascii() and HEX_ID.fullmatch(text) and text.strip("0")):
        raise ValueError(f"{what} must be {size} lower-case hex digits, not all zero: {_shown(value)}")
    return text


def _checked_flags(value: object) -> int:
    if not isinstance(value, int) or not 0 <= value <= 255:
        raise ValueError(f"flags must be an int from 0 to 255, not {_shown(repr(value))}")
    return int(value)


def format_traceparent(trace_id: str, span_id: str, flags: int) -> str:
    """The version-00 ``traceparent`` value for these ids and flags (checked)."""
    trace = _checked_id(trace_id, 32, "trace_id")
    span = _checked_id(span_id, 16, "span_id")
    return f"00-{trace}-{span}-{_checked_flags(flags):02x}"
