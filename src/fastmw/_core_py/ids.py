"""Ids and clock: monotonic time, CSPRNG request ids, UUID checks."""

from __future__ import annotations

import os
import time
import uuid

# --------------------------------------------------------------------------- ids and clock

monotonic = time.monotonic


def new_request_id() -> str:
    """A random (CSPRNG) uuid4 as 32 lower-case hex characters."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def _uuid_version(value: object) -> int:
    """The UUID's version (0 when not RFC 4122), or -1 if ``uuid.UUID`` refuses it."""
    if type(value) is not str:
        if not isinstance(value, str):
            return -1
        value = str.__str__(value)  # a subclass is read for its text, not its own methods
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError):
        return -1
    return parsed.version or 0


def is_uuid(value: object) -> bool:
    """Whether ``uuid.UUID(value)`` accepts ``value`` (any form, any version)."""
    return _uuid_version(value) >= 0


def is_uuid4(value: object) -> bool:
    """Whether ``value`` parses as a UUID whose version is 4."""
    return _uuid_version(value) == 4


def is_visible_ascii(value: object, max_length: int) -> bool:
    """Whether ``value`` is a non-empty str of printable ASCII (0x21-0x7E) no longer than ``max_length``."""
    if type(value) is not str:
        if not isinstance(value, str):
            return False
        value = str.__str__(value)  # a subclass is read for its text, not its own methods
    if not value or len(value) > max_length:
        return False
    return all("!" <= char <= "~" for char in value)
