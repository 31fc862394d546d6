"""tracestate (W3C Trace Context Level 2 member grammar), parsed from one or more header values.

Members are kept in order with OWS and empty members dropped; a later member repeating a
key is dropped (the left-most is the most recent); one malformed member, or more than 32,
discards the whole tracestate; a result over 512 characters loses whole members, those
over 128 characters first, then from the right. The result is ASCII text or None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastmw._core_py._common import _shown, _type_name

MAX_MEMBERS = 32
MAX_LENGTH = 512
LONG_MEMBER = 128
OWS = b" \t"
# One member, OWS stripped: key (a-z or a digit first, up to 256 of a-z 0-9 _ - * / @), "=",
# value (1 to 256 printable ASCII characters but "," and "=", not ending in a space).
KEY = rb"[a-z0-9][a-z0-9_\-*/@]{0,255}"
VALUE = rb"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
MEMBER = re.compile(b"(" + KEY + b")=" + VALUE)


def _text_of(value: object, what: str) -> bytes | None:
    """The bytes of a bytes or ASCII str value; None for a non-ASCII str (never valid)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("ascii") if value.isascii() else None
    raise TypeError(f"{what} must be str or bytes, not {_type_name(value)}")


def _add(members: list[bytes], keys: set[bytes], seen: list[int], raw: bytes) -> bool:
    """Adds the members of one header value; False when the tracestate is invalid."""
    for part in raw.split(b","):
        member = part.strip(OWS)
        if not member:
            continue
        seen[0] += 1
        match = MEMBER.fullmatch(member)
        if seen[0] > MAX_MEMBERS or match is None:
            return False
        key = match.group(1)
        if key not in keys:
            keys.add(key)
            members.append(member)
    return True


def _text(members: list[bytes]) -> str | None:
    """The kept members joined with commas (truncated to MAX_LENGTH), or None."""
    total = sum(map(len, members)) + len(members) - 1
    while members and total > MAX_LENGTH:
        drop = len(members) - 1
        for index in range(len(members) - 1, -1, -1):
            if len(members[index]) > LONG_MEMBER:
                drop = index
                break
        total -= len(members.pop(drop)) + 1
    return b",".join(members).decode("ascii") if members else None


def _tracestate_of_raw(values: Iterable[bytes]) -> str | None:
    """The tracestate of raw header values (bytes, already checked)."""
    members: list[bytes] = []
    keys: set[bytes] = set()
    seen = [0]
    for raw in values:
        if not _add(members, keys, seen, raw):
            return None
    return _text(members)


def _tracestate_of_values(values: tuple[object, ...], strict: bool) -> str | None:
    """``parse_tracestate``; with ``strict``, a malformed tracestate raises ValueError."""
    # Every value is type-checked before any is parsed.
    texts = [_text_of(value, "tracestate") for value in values]
    members: list[bytes] = []
    keys: set[bytes] = set()
    seen = [0]
    for value, raw in zip(values, texts, strict=True):
        if raw is None or not _add(members, keys, seen, raw):
            if strict:
                raise ValueError(f"tracestate is not a valid W3C tracestate: {_shown(value)}")  # type: ignore[arg-type]
            return None
    return _text(members)


def parse_tracestate(*values: str | bytes) -> str | None:
    """The tracestate to propagate from one or more header values (str or bytes), or None.

    None when there is no member or the tracestate is invalid (then it is dropped whole).
    """
    return _tracestate_of_values(values, False)
