"""Constants and error helpers shared by the pure twin's modules."""

from __future__ import annotations

RawHeaders = list[tuple[bytes, bytes]]

SHOWN_CHARS = 64
# RFC 9110 token characters: the only bytes allowed in a header name.
TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Control characters refused in a header value; HTAB (0x09) is allowed by RFC 9110.
VALUE_FORBIDDEN = frozenset([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])
RESPONSE_START_TYPES = ("http.response.start", "websocket.http.response.start")
RESPONSE_BODY_TYPES = ("http.response.body", "websocket.http.response.body")
# A UUID header longer than this is refused before it is parsed (8 KiB).
MAX_UUID_HEADER = 8 * 1024
_MISSING = object()
# What a request's recorders raise when called after its pipeline finished.
SEND_AFTER_END = "ASGI send called after the request finished: the app, or a task it started, kept send past its end"
RECEIVE_AFTER_END = (
    "ASGI receive called after the request finished: the app, or a task it started, kept receive past its end"
)


# --------------------------------------------------------------------------- errors


def _shown(value: str | bytes) -> str:
    """A short, escaped rendering of a value for error messages."""
    text = repr(value[:SHOWN_CHARS])
    return text + "..." if len(value) > SHOWN_CHARS else text


def _type_name(value: object) -> str:
    return type(value).__name__


def _exact_bytes(value: bytes) -> bytes:
    """The bytes a ``bytes`` (or subclass) object holds, as an exact ``bytes``, calling none of its methods."""
    return value if type(value) is bytes else bytes.__getitem__(value, slice(None))
