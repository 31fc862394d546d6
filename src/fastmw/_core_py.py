"""Pure-Python twin of ``fastmw._core``: the specification of the core.

Every public name here exists in the compiled module with the same signature,
defaults, results, exception types and messages. Change both in one commit.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextvars import Token
from typing import Any

from starlette.datastructures import MutableHeaders as _StarletteMutableHeaders

from fastmw._storage import REQUEST_CONTEXT
from fastmw.errors import ConfigurationError, ContextDoesNotExistError, MiddleWareValidationError

__all__ = [
    "ContextRunner",
    "HeaderReader",
    "HeaderSend",
    "JsonLinesWriter",
    "MutableHeaders",
    "ReceiveRecorder",
    "SendRecorder",
    "UUIDHeaderReader",
    "_Context",
    "add_vary_header",
    "context_get",
    "context_reset",
    "context_set",
    "encode_access_record",
    "encode_header_name",
    "encode_header_value",
    "header_append",
    "header_contains",
    "header_delete",
    "header_get",
    "header_getlist",
    "header_items",
    "header_keys",
    "header_set",
    "header_setdefault",
    "header_update",
    "header_values",
    "is_uuid",
    "is_uuid4",
    "is_visible_ascii",
    "message_headers",
    "monotonic",
    "new_request_id",
    "solo_call",
]

RawHeaders = list[tuple[bytes, bytes]]

SHOWN_CHARS = 64
# RFC 9110 token characters: the only bytes allowed in a header name.
TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Control characters refused in a header value; HTAB (0x09) is allowed by RFC 9110.
VALUE_FORBIDDEN = frozenset([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])
RESPONSE_START_TYPES = ("http.response.start", "websocket.http.response.start")
RESPONSE_BODY_TYPES = ("http.response.body", "websocket.http.response.body")
# The messages that open a response: where HeaderSend puts its headers.
HEADER_SEND_TYPES = ("http.response.start", "websocket.accept", "websocket.http.response.start")
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# A UUID header longer than this is refused before it is parsed (8 KiB).
MAX_UUID_HEADER = 8 * 1024
# inspect.CO_ITERABLE_COROUTINE: a @types.coroutine generator may be awaited.
CO_ITERABLE_COROUTINE = 0x100
_MISSING = object()


# --------------------------------------------------------------------------- errors


def _shown(value: str | bytes) -> str:
    """A short, escaped rendering of a value for error messages."""
    text = repr(value[:SHOWN_CHARS])
    return text + "..." if len(value) > SHOWN_CHARS else text


def _type_name(value: object) -> str:
    return type(value).__name__


# --------------------------------------------------------------------------- header names and values


def _lookup_key(name: object) -> bytes:
    """The lower-cased latin-1 bytes a lookup compares against."""
    if isinstance(name, bytes):
        return name.lower()
    if isinstance(name, str):
        try:
            return name.encode("latin-1").lower()
        except UnicodeEncodeError:
            raise ValueError(f"HTTP header name {_shown(name)} is not latin-1 encodable") from None
    raise TypeError(f"header name must be str or bytes, not {_type_name(name)}")


def encode_header_name(name: str | bytes) -> bytes:
    """Lower-cased latin-1 bytes of ``name``; refuses anything but an RFC 9110 token."""
    key = _lookup_key(name)
    if not key or not TOKEN_CHARS.issuperset(key):
        raise ValueError(f"invalid HTTP header name {_shown(name)}: only RFC 9110 token characters are allowed")
    return key


def encode_header_value(value: str | bytes) -> bytes:
    """Latin-1 bytes of ``value``; refuses CR, LF, NUL and other control characters."""
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str):
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"HTTP header value {_shown(value)} is not latin-1 encodable") from None
    else:
        raise TypeError(f"header value must be str or bytes, not {_type_name(value)}")
    if not VALUE_FORBIDDEN.isdisjoint(raw):
        raise ValueError(
            f"invalid HTTP header value {_shown(value)}: control characters (CR, LF, NUL, ...) are not allowed"
        )
    return raw


def _entry(entry: object) -> tuple[bytes, bytes]:
    """Check one raw header entry and return it as a (name, value) pair."""
    if type(entry) is tuple and len(entry) == 2 and type(entry[0]) is bytes and type(entry[1]) is bytes:
        return entry  # what servers send, checked in one line
    if not isinstance(entry, (tuple, list)):
        raise TypeError(f"ASGI header entry must be a (name, value) pair, not {_type_name(entry)}")
    if len(entry) != 2:
        raise TypeError(f"ASGI header entry must have 2 items, not {len(entry)}")
    name, value = entry
    if not isinstance(name, bytes):
        raise TypeError(f"ASGI header name must be bytes, not {_type_name(name)}")
    if not isinstance(value, bytes):
        raise TypeError(f"ASGI header value must be bytes, not {_type_name(value)}")
    return name, value


def _mutable(headers: object) -> list[Any]:
    if not isinstance(headers, list):
        raise TypeError(f"headers must be a list, not {_type_name(headers)}")
    return headers


def _same_name(name: bytes, key: bytes) -> bool:
    return name == key or (len(name) == len(key) and name.lower() == key)


# --------------------------------------------------------------------------- raw header lists


def header_get(headers: Iterable[Any], name: str | bytes, default: Any = None) -> Any:
    """Value of the first header called ``name`` (any case), or ``default``."""
    key = _lookup_key(name)
    size = len(key)
    for entry in headers:
        item_name, item_value = _entry(entry)
        # _same_name, inlined: this loop runs for every plugin on every request.
        if item_name == key or (len(item_name) == size and item_name.lower() == key):
            return item_value
    return default


def header_getlist(headers: Iterable[Any], name: str | bytes) -> list[bytes]:
    """Values of every header called ``name``, in order."""
    key = _lookup_key(name)
    found = []
    for entry in headers:
        item_name, item_value = _entry(entry)
        if _same_name(item_name, key):
            found.append(item_value)
    return found


def header_contains(headers: Iterable[Any], name: str | bytes) -> bool:
    """Whether a header called ``name`` is present."""
    key = _lookup_key(name)
    for entry in headers:
        item_name, _ = _entry(entry)
        if _same_name(item_name, key):
            return True
    return False


def header_set(headers: RawHeaders, name: str | bytes, value: str | bytes) -> None:
    """Replace the first ``name`` header in place, drop its duplicates, or append."""
    items = _mutable(headers)
    key = encode_header_name(name)
    raw = encode_header_value(value)
    first = -1
    index = 0
    while index < len(items):
        item_name, _ = _entry(items[index])
        if _same_name(item_name, key):
            if first < 0:
                first = index
            else:
                del items[index]
                continue
        index += 1
    if first < 0:
        items.append((key, raw))
    else:
        items[first] = (key, raw)


def header_setdefault(headers: RawHeaders, name: str | bytes, value: str | bytes) -> bytes:
    """The existing value of ``name``, or append ``value`` and return it."""
    items = _mutable(headers)
    key = encode_header_name(name)
    raw = encode_header_value(value)
    for entry in items:
        item_name, item_value = _entry(entry)
        if _same_name(item_name, key):
            return item_value
    items.append((key, raw))
    return raw


def header_append(headers: RawHeaders, name: str | bytes, value: str | bytes) -> None:
    """Append a header, keeping any existing ones of the same name."""
    items = _mutable(headers)
    items.append((encode_header_name(name), encode_header_value(value)))


def header_delete(headers: RawHeaders, name: str | bytes) -> int:
    """Remove every ``name`` header; return how many were removed."""
    items = _mutable(headers)
    key = _lookup_key(name)
    removed = 0
    index = 0
    while index < len(items):
        item_name, _ = _entry(items[index])
        if _same_name(item_name, key):
            del items[index]
            removed += 1
        else:
            index += 1
    return removed


def header_update(headers: RawHeaders, other: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> None:
    """``header_set`` each pair of a mapping or an iterable of pairs."""
    _mutable(headers)
    pairs = other.items() if isinstance(other, Mapping) else other
    for name, value in pairs:
        header_set(headers, name, value)


def header_items(headers: Iterable[Any]) -> list[tuple[str, str]]:
    """(name, value) pairs decoded from latin-1."""
    pairs = []
    for entry in headers:
        item_name, item_value = _entry(entry)
        pairs.append((item_name.decode("latin-1"), item_value.decode("latin-1")))
    return pairs


def header_keys(headers: Iterable[Any]) -> list[str]:
    """Header names decoded from latin-1."""
    return [_entry(entry)[0].decode("latin-1") for entry in headers]


def header_values(headers: Iterable[Any]) -> list[str]:
    """Header values decoded from latin-1."""
    return [_entry(entry)[1].decode("latin-1") for entry in headers]


def add_vary_header(headers: RawHeaders, vary: str | bytes) -> None:
    """Join ``vary`` onto an existing Vary header (``", "``) or add one."""
    items = _mutable(headers)
    raw = encode_header_value(vary)
    existing = header_get(items, b"vary")
    if existing is not None:
        raw = existing + b", " + raw
    header_set(items, b"vary", raw)


def message_headers(message: MutableMapping[str, Any]) -> RawHeaders:
    """The header list of an ASGI message or scope, made a list in place if needed."""
    if not isinstance(message, dict):
        raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
    headers = dict.get(message, "headers", _MISSING)  # the item itself, as the compiled twin reads it
    if type(headers) is list:
        return headers
    if headers is _MISSING or headers is None:
        headers = []
    elif isinstance(headers, (list, tuple)):
        headers = list(headers)
    else:
        raise TypeError(f"ASGI 'headers' must be a list or tuple, not {_type_name(headers)}")
    message["headers"] = headers
    return headers


def _owned_headers(message: MutableMapping[str, Any]) -> RawHeaders:
    """A fresh copy of the message's header list, stored back in the message.

    The list an app sends may be shared (a Starlette ``Response`` sends its own
    ``raw_headers``; one error response often serves every request), so edits go to
    a copy, as Starlette's ``MutableHeaders(scope=...)`` does.
    """
    headers = list(message_headers(message))
    message["headers"] = headers
    return headers


class MutableHeaders(_StarletteMutableHeaders):
    """Starlette's ``MutableHeaders`` with case-insensitive lookups and validated writes."""

    def __init__(
        self,
        headers: Mapping[str, str] | None = None,
        raw: RawHeaders | None = None,
        scope: MutableMapping[str, Any] | None = None,
    ) -> None:
        if scope is not None and headers is None and raw is None:
            super().__init__(raw=_owned_headers(scope))
        else:
            super().__init__(headers, raw, scope)

    def __getitem__(self, key: str) -> str:
        value = header_get(self._list, key)
        if value is None:
            raise KeyError(key)
        return value.decode("latin-1")  # type: ignore[no-any-return]

    def get(self, key: str, default: Any = None) -> Any:
        value = header_get(self._list, key)
        return default if value is None else value.decode("latin-1")

    def __contains__(self, key: Any) -> bool:
        return header_contains(self._list, key)

    def getlist(self, key: str) -> list[str]:
        return [value.decode("latin-1") for value in header_getlist(self._list, key)]

    def mutablecopy(self) -> MutableHeaders:
        return MutableHeaders(raw=self._list[:])

    def __setitem__(self, key: str, value: str) -> None:
        header_set(self._list, key, value)

    def __delitem__(self, key: str) -> None:
        header_delete(self._list, key)

    def setdefault(self, key: str, value: str) -> str:
        return header_setdefault(self._list, key, value).decode("latin-1")

    def update(self, other: Any = (), /, **kwargs: str) -> None:  # type: ignore[override]
        header_update(self._list, other)
        if kwargs:
            header_update(self._list, kwargs)

    def append(self, key: str, value: str) -> None:
        header_append(self._list, key, value)

    def add_vary_header(self, vary: str) -> None:
        add_vary_header(self._list, vary)


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
    if not isinstance(value, str):
        return -1
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
    if not isinstance(value, str) or not value or len(value) > max_length:
        return False
    return all("!" <= char <= "~" for char in value)


# --------------------------------------------------------------------------- send / receive wrapping


class SendRecorder:
    """Wraps an ASGI ``send``: records the response as it passes, never buffers it.

    Headers registered with ``add_header``/``set_header`` and the ``on_start``
    callback are applied to ``http.response.start`` (and ``websocket.accept``).
    """

    __slots__ = (
        "_pending",
        "accepted",
        "body_bytes",
        "close_code",
        "complete",
        "headers",
        "on_start",
        "send",
        "started",
        "status",
        "t_first_byte",
        "t_last_byte",
        "t_start",
    )

    def __init__(
        self,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        on_start: Callable[[SendRecorder, dict[str, Any]], None] | None = None,
    ) -> None:
        self.send = send
        self.on_start = on_start
        self.started = False
        self.complete = False
        self.accepted = False
        self.status: int | None = None
        self.headers: RawHeaders | None = None
        self.close_code: int | None = None
        self.body_bytes = 0
        self.t_start = monotonic()
        self.t_first_byte = 0.0
        self.t_last_byte = 0.0
        self._pending: list[tuple[bool, bytes, bytes]] = []

    def add_header(self, name: str | bytes, value: str | bytes) -> None:
        """Append this header to the response start (duplicates kept)."""
        self._pending.append((False, encode_header_name(name), encode_header_value(value)))

    def set_header(self, name: str | bytes, value: str | bytes) -> None:
        """Set this header on the response start (replacing the app's)."""
        self._pending.append((True, encode_header_name(name), encode_header_value(value)))

    def _apply(self, message: dict[str, Any]) -> RawHeaders:
        headers = _owned_headers(message)
        # A malformed entry is refused here, at the innermost layer, before anything is sent.
        for entry in headers:
            _entry(entry)
        for replace, name, value in self._pending:
            if replace:
                header_set(headers, name, value)
            else:
                headers.append((name, value))
        if self.on_start is not None:
            self.on_start(self, message)
        return headers

    def __call__(self, message: dict[str, Any]) -> Awaitable[None]:
        if not isinstance(message, dict):
            raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
        kind = message.get("type")
        if kind in RESPONSE_BODY_TYPES:
            body = message.get("body", b"")
            if not isinstance(body, (bytes, bytearray)):
                raise TypeError(f"{kind} 'body' must be bytes, not {_type_name(body)}")
            self.body_bytes += len(body)
            if not message.get("more_body", False):
                self.complete = True
                self.t_last_byte = monotonic()
        elif kind in RESPONSE_START_TYPES:
            if self.started:
                raise RuntimeError(f"{kind} was already sent for this request")
            status = message.get("status")
            if not isinstance(status, int):
                raise TypeError(f"{kind} 'status' must be an int, not {_type_name(status)}")
            self.headers = self._apply(message)
            self.status = status
            self.started = True
            self.t_first_byte = monotonic()
        elif kind == "websocket.accept":
            self.headers = self._apply(message)
            self.accepted = True
            self.t_first_byte = monotonic()
        elif kind == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.t_last_byte = monotonic()
        return self.send(message)


class ReceiveRecorder:
    """Wraps an ASGI ``receive``: counts request body bytes, notes disconnects,
    and keeps a copy of the body up to ``body_limit`` bytes without consuming it."""

    __slots__ = ("_copy", "body_bytes", "body_limit", "body_truncated", "disconnected", "receive")

    def __init__(self, receive: Callable[[], Awaitable[dict[str, Any]]], body_limit: int = 0) -> None:
        if type(body_limit) is not int or body_limit < 0:
            raise ValueError("body_limit must be a non-negative int")
        self.receive = receive
        self.body_limit = body_limit
        self.body_bytes = 0
        self.body_truncated = False
        self.disconnected = False
        self._copy = bytearray()

    @property
    def body(self) -> bytes:
        """The copy of the request body read so far (at most ``body_limit`` bytes)."""
        return bytes(self._copy)

    def release(self) -> None:
        """Drop the body copy."""
        self._copy = bytearray()

    async def __call__(self) -> dict[str, Any]:
        message = await self.receive()
        kind = message.get("type")
        if kind == "http.request":
            body = message.get("body", b"")
            size = len(body)
            self.body_bytes += size
            room = self.body_limit - len(self._copy)
            if size > room:
                self.body_truncated = True
                size = room
            if size > 0:
                self._copy += body[:size]
        elif kind == "http.disconnect" or kind == "websocket.disconnect":
            self.disconnected = True
        return message


# --------------------------------------------------------------------------- context storage


def context_set(data: dict[Any, Any]) -> Token[dict[Any, Any]]:
    """Make ``data`` the current request context; returns the token to reset it."""
    if not isinstance(data, dict):
        raise TypeError(f"context data must be a dict, not {_type_name(data)}")
    return REQUEST_CONTEXT.set(data)


def context_reset(token: Token[dict[Any, Any]]) -> None:
    """Restore the context that was current before ``context_set`` returned ``token``."""
    REQUEST_CONTEXT.reset(token)


def context_get() -> dict[Any, Any]:
    """The current request context dict; raises ``ContextDoesNotExistError`` outside a request."""
    data = REQUEST_CONTEXT.get(None)
    if data is None:
        raise ContextDoesNotExistError()
    return data


# --------------------------------------------------------------------------- context runner
# The request-context middleware's hot path: plugin values read from the raw
# request headers, the context set, the echo headers registered with a
# SendRecorder, and the app run; the context is reset once the app returns.


def _pair(item: Any, what: str) -> tuple[Any, Any]:
    """``item`` as a 2-tuple; the same TypeError in both twins otherwise."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"{what} must be a pair, not {_type_name(item)} {_shown(repr(item))}")
    return item[0], item[1]


class _ReadOnly:
    """Attributes set in ``__init__`` only, as the compiled twin's are."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        raise AttributeError(f"attribute '{name}' of '{cls.__module__}.{cls.__qualname__}' objects is not writable")


class HeaderReader:
    """``reader(headers)``: the first ``name`` header of raw ASGI headers as latin-1 text, or None."""

    __slots__ = ("_name",)

    def __init__(self, name: str | bytes) -> None:
        self._name = _lookup_key(name)

    @property
    def name(self) -> bytes:
        """The lower-cased header name looked up."""
        return self._name

    def __call__(self, headers: Iterable[Any]) -> str | None:
        raw = header_get(headers, self._name)
        return None if raw is None else raw.decode("latin-1")


class UUIDHeaderReader:
    """``reader(headers)``: a UUID plugin's value, the ``name`` header or a new 32-hex uuid4.

    An absent or empty header (or ``force_new``) gives ``new_request_id()``. A sent
    value is kept when it is at most ``max_length`` characters and, with ``validate``,
    a UUID ``uuid.UUID`` accepts with no control character; without ``validate``,
    when it may be echoed in a response header. Anything else is passed to
    ``on_invalid(value)``, whose result is returned (it may raise); without
    ``on_invalid`` a ``ValueError`` is raised.
    """

    __slots__ = ("_force_new", "_max_length", "_name", "_on_invalid", "_validate")

    def __init__(
        self,
        name: str | bytes,
        *,
        force_new: bool = False,
        validate: bool = True,
        max_length: int = MAX_UUID_HEADER,
        on_invalid: Callable[[str], Any] | None = None,
    ) -> None:
        if type(max_length) is not int or not 0 <= max_length <= sys.maxsize:
            raise ValueError("max_length must be an int from 0 to sys.maxsize")
        if on_invalid is not None and not callable(on_invalid):
            raise TypeError(f"on_invalid must be callable or None, not {_type_name(on_invalid)}")
        self._name = _lookup_key(name)
        self._force_new = bool(force_new)
        self._validate = bool(validate)
        self._max_length = max_length
        self._on_invalid = on_invalid

    @property
    def name(self) -> bytes:
        """The lower-cased header name looked up."""
        return self._name

    @property
    def max_length(self) -> int:
        """The longest value kept."""
        return self._max_length

    @property
    def on_invalid(self) -> Callable[[str], Any] | None:
        """Called with a refused value; its result is returned."""
        return self._on_invalid

    @property
    def force_new(self) -> bool:
        """Always generate a new id (writable; stored as a bool)."""
        return self._force_new

    @force_new.setter
    def force_new(self, value: object) -> None:
        self._force_new = bool(value)

    @property
    def validate(self) -> bool:
        """Require a UUID (writable; stored as a bool)."""
        return self._validate

    @validate.setter
    def validate(self, value: object) -> None:
        self._validate = bool(value)

    def __call__(self, headers: Iterable[Any]) -> Any:
        raw = None if self._force_new else header_get(headers, self._name)
        if not raw:
            return new_request_id()
        value: str = raw.decode("latin-1")
        if len(value) <= self._max_length:
            if self._validate:
                # uuid.UUID tolerates surrounding whitespace, so CR/LF/NUL can hide
                # in an accepted value: isprintable() refuses every control character.
                if is_uuid(value) and value.isprintable():
                    return value
            elif _echoable(value):
                return value
        if self._on_invalid is None:
            raise ValueError(f"invalid UUID header value {_shown(value)}")
        return self._on_invalid(value)


def _echoable(value: str) -> bool:
    try:
        encode_header_value(value)
    except ValueError:
        return False
    return True


class ContextRunner(_ReadOnly):
    """Runs ``app`` with a request context built from the raw request headers.

    ``runner(scope, receive, send)`` returns a coroutine (compiled: an awaitable that
    ``asyncio`` takes as one): nothing runs until it is first stepped, so the context
    is set in the task that awaits it. On ``http`` and ``websocket`` scopes the context
    dict is ``{key: reader(headers)}`` over ``readers`` (``(key, reader)`` pairs, in
    order); a reader raising
    ``MiddleWareValidationError`` hands the request to
    ``refuse(scope, receive, send, exc)`` instead (re-raised without ``refuse``).
    For each ``(key, header name)`` of ``echo`` the context value (``str()`` of it)
    goes on the response start, appended or, with ``replace``, set; a value that
    cannot be a header value is skipped. The context is reset when the app returns
    and left set when it raises, so outer exception handlers can read it. Other
    scopes go to ``app`` untouched.
    """

    __slots__ = ("app", "echo", "readers", "refuse", "replace")
    app: Callable[[Any, Any, Any], Awaitable[Any]]
    readers: tuple[tuple[Any, Callable[[Any], Any]], ...]
    echo: tuple[tuple[Any, bytes], ...]
    replace: bool
    refuse: Callable[[Any, Any, Any, MiddleWareValidationError], Awaitable[Any]] | None

    def __init__(
        self,
        app: Callable[[Any, Any, Any], Awaitable[Any]],
        readers: Iterable[tuple[Any, Callable[[Any], Any]]],
        echo: Iterable[tuple[Any, str | bytes]] = (),
        *,
        replace: bool = False,
        refuse: Callable[[Any, Any, Any, MiddleWareValidationError], Awaitable[Any]] | None = None,
    ) -> None:
        if refuse is not None and not callable(refuse):
            raise TypeError(f"refuse must be callable or None, not {_type_name(refuse)}")
        init = object.__setattr__
        init(self, "app", app)
        init(self, "readers", tuple(_reader_pair(pair) for pair in readers))
        init(self, "echo", tuple(_echo_pair(pair) for pair in echo))
        init(self, "replace", bool(replace))
        init(self, "refuse", refuse)

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[Any]:
        # A coroutine: nothing runs (not even the readers) until it is first stepped.
        return self._run(scope, receive, send)

    async def _run(self, scope: Any, receive: Any, send: Any) -> Any:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            return await _awaitable(self.app(scope, receive, send))
        headers = scope.get("headers") or ()
        data: dict[Any, Any] = {}
        try:
            for key, read in self.readers:
                data[key] = read(headers)
        except MiddleWareValidationError as exc:
            if self.refuse is None:
                raise
            return await _awaitable(self.refuse(scope, receive, send, exc))
        if self.echo:
            echoed = []
            for key, name in self.echo:
                value = data.get(key)
                if value is None:
                    continue  # nothing to echo (an absent header, a key no reader fills)
                try:
                    echoed.append((name, encode_header_value(value if type(value) is str else str(value))))
                except ValueError:
                    continue
            send = HeaderSend(send, echoed, replace=self.replace)
        token = context_set(data)
        result = await _awaitable(self.app(scope, receive, send))
        # Reached only when the app returns: an exception leaves the context set.
        REQUEST_CONTEXT.reset(token)
        return result


async def solo_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
    """An ASGI ``__call__`` for a middleware that may run as one core runner.

    Awaits ``self._solo(scope, receive, send)`` when ``self._solo`` is set (a
    ``ContextRunner``), ``self._layer(scope, receive, send)`` otherwise. Compiled,
    it is a coroutine without a Python frame.
    """
    runner = self._solo
    if runner is not None:
        await runner(scope, receive, send)
    else:
        await self._layer(scope, receive, send)


class HeaderSend(_ReadOnly):
    """Wraps an ASGI ``send``: puts ``headers`` on the response start, passes the rest on.

    On the first ``http.response.start``, ``websocket.accept`` or
    ``websocket.http.response.start`` the message gets a copy of its header list
    (the app's may be shared) with each ``(name, value)`` of ``headers``
    appended or, with ``replace``, set (Starlette's ``MutableHeaders`` semantics).
    A second response start raises ``RuntimeError``; nothing is buffered.
    """

    __slots__ = ("headers", "replace", "send", "started")
    send: Callable[[dict[str, Any]], Awaitable[Any]]
    headers: tuple[tuple[bytes, bytes], ...]
    replace: bool
    started: bool

    def __init__(
        self,
        send: Callable[[dict[str, Any]], Awaitable[Any]],
        headers: Iterable[tuple[str | bytes, str | bytes]],
        *,
        replace: bool = False,
    ) -> None:
        pairs = [_pair(item, "a header") for item in headers]
        init = object.__setattr__
        init(self, "send", send)
        init(self, "headers", tuple((encode_header_name(name), encode_header_value(value)) for name, value in pairs))
        init(self, "replace", bool(replace))
        init(self, "started", False)

    def __call__(self, message: dict[str, Any]) -> Awaitable[Any]:
        if not isinstance(message, dict):
            raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
        kind = dict.get(message, "type")  # the item itself, as the compiled twin reads it
        if type(kind) is str and kind in HEADER_SEND_TYPES:
            if self.started:
                raise RuntimeError(f"{kind} was already sent for this request")
            headers = _owned_headers(message)
            # A malformed entry is refused here, before anything is sent.
            for entry in headers:
                _entry(entry)
            for name, value in self.headers:
                if self.replace:
                    header_set(headers, name, value)
                else:
                    headers.append((name, value))
            object.__setattr__(self, "started", True)
        return self.send(message)


def _reader_pair(pair: Any) -> tuple[Any, Callable[[Any], Any]]:
    key, reader = _pair(pair, "a context reader entry")
    if not callable(reader):
        raise TypeError(f"context reader for {key!r} must be callable, not {_type_name(reader)}")
    return key, reader


def _echo_pair(pair: Any) -> tuple[Any, bytes]:
    key, name = _pair(pair, "an echo entry")
    return key, encode_header_name(name)


def _awaitable(value: Any) -> Any:
    """``value`` when ``await`` takes it; the same TypeError in both twins otherwise."""
    if isinstance(value, Awaitable) or getattr(getattr(value, "gi_code", None), "co_flags", 0) & CO_ITERABLE_COROUTINE:
        return value
    raise TypeError(f"the app returned {_type_name(value)}, which cannot be awaited")


class _Context:
    """A dict-like view of the current request's context (starlette-context's ``context``)."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise ConfigurationError("Can't instantiate with attributes")

    @property
    def data(self) -> dict[Any, Any]:
        """The context dict itself, for dumping (e.g. to JSON)."""
        return context_get()

    def exists(self) -> bool:
        """Whether a request context is active."""
        return REQUEST_CONTEXT.get(None) is not None

    def copy(self) -> dict[Any, Any]:
        """A shallow copy of the context dict."""
        return context_get().copy()

    def __getitem__(self, key: Any) -> Any:
        return context_get()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        context_get()[key] = value

    def __delitem__(self, key: Any) -> None:
        del context_get()[key]

    def __contains__(self, key: Any) -> bool:
        return key in context_get()

    def __len__(self) -> int:
        return len(context_get())

    def __iter__(self) -> Iterator[Any]:
        return iter(context_get())

    def __eq__(self, other: object) -> bool:
        data = context_get()
        if isinstance(other, _Context):
            return data == other.data
        return data == other

    __hash__ = None  # type: ignore[assignment]

    def get(self, key: Any, default: Any = None) -> Any:
        return context_get().get(key, default)

    def keys(self) -> Any:
        return context_get().keys()

    def values(self) -> Any:
        return context_get().values()

    def items(self) -> Any:
        return context_get().items()

    def pop(self, key: Any, *default: Any) -> Any:
        return context_get().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        return context_get().popitem()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return context_get().setdefault(key, default)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        context_get().update(other, **kwargs)

    def clear(self) -> None:
        context_get().clear()

    def __ior__(self, other: Any) -> _Context:
        context_get().update(other)
        return self

    def __repr__(self) -> str:
        data = REQUEST_CONTEXT.get(None)
        return f"<fastmw.ctx._Context {data if data is not None else {}}>"

    def __str__(self) -> str:
        data = REQUEST_CONTEXT.get(None)
        return str(data if data is not None else {})


MutableMapping.register(_Context)


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
    if isinstance(value, (bytes, bytearray)):
        # Header bytes are latin-1 by ASGI; every byte maps to one code point.
        return _json_string(bytes(value).decode("latin-1"))
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

    Write errors propagate to the caller; the failed batch is dropped, not retried.
    """

    __slots__ = ("_buffer", "_lines", "batch_lines", "stream")

    def __init__(self, stream: Any, batch_lines: int = 64) -> None:
        if type(batch_lines) is not int or batch_lines < 1:
            raise ValueError("batch_lines must be a positive int")
        if not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream must have a write() method, not {_type_name(stream)}")
        self.stream = stream
        self.batch_lines = batch_lines
        self._buffer = bytearray()
        self._lines = 0

    @property
    def pending(self) -> int:
        """How many lines wait in the buffer."""
        return self._lines

    def write(self, line: bytes) -> None:
        """Buffer one encoded line; write the batch out once it is full."""
        if not isinstance(line, bytes):
            raise TypeError(f"line must be bytes, not {_type_name(line)}")
        self._buffer += line
        self._lines += 1
        if self._lines >= self.batch_lines:
            self.flush()

    def write_record(self, keys: Sequence[str], values: Sequence[Any]) -> None:
        """``write(encode_access_record(keys, values))``."""
        self.write(encode_access_record(keys, values))

    def flush(self) -> None:
        """Write out the buffered lines and flush the stream."""
        if not self._lines:
            return
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._lines = 0
        self.stream.write(data)
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()
