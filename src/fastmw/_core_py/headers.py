"""Header names, values and raw ASGI header lists (Starlette semantics)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from starlette.datastructures import MutableHeaders as _StarletteMutableHeaders

from fastmw._core_py._common import (
    _MISSING,
    TOKEN_CHARS,
    VALUE_FORBIDDEN,
    RawHeaders,
    _exact_bytes,
    _shown,
    _type_name,
)

# --------------------------------------------------------------------------- header names and values


def _lookup_key(name: object) -> bytes:
    """The lower-cased latin-1 bytes a lookup compares against.

    A ``bytes`` or ``str`` subclass is read for what it holds: none of its own methods is called."""
    if type(name) is bytes:
        return name.lower()
    if isinstance(name, bytes):
        return bytes.lower(name)
    if isinstance(name, str):
        try:
            return str.encode(name, "latin-1").lower()
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
    if type(value) is bytes:
        raw = value
    elif isinstance(value, str):
        try:
            raw = str.encode(value, "latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"HTTP header value {_shown(value)} is not latin-1 encodable") from None
    elif isinstance(value, bytes):
        raw = _exact_bytes(value)
    else:
        raise TypeError(f"header value must be str or bytes, not {_type_name(value)}")
    if not VALUE_FORBIDDEN.isdisjoint(raw):
        raise ValueError(
            f"invalid HTTP header value {_shown(value)}: control characters (CR, LF, NUL, ...) are not allowed"
        )
    return raw


def is_header_value(value: object) -> bool:
    """Whether ``encode_header_value`` takes ``value``: it may go out in a header (no CR, LF, NUL, ...)."""
    try:
        encode_header_value(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _entry(entry: object) -> tuple[bytes, bytes]:
    """Check one raw header entry and return it as a (name, value) pair.

    Any other shape than what servers send is a tuple or list (or subclass) of len() 2
    whose items [0] and [1] are bytes, returned as exact bytes."""
    if type(entry) is tuple and len(entry) == 2 and type(entry[0]) is bytes and type(entry[1]) is bytes:
        return entry  # what servers send, checked in one line
    if not isinstance(entry, (tuple, list)):
        raise TypeError(f"ASGI header entry must be a (name, value) pair, not {_type_name(entry)}")
    if len(entry) != 2:
        raise TypeError(f"ASGI header entry must have 2 items, not {len(entry)}")
    name = entry[0]
    value = entry[1]
    if not isinstance(name, bytes):
        raise TypeError(f"ASGI header name must be bytes, not {_type_name(name)}")
    if not isinstance(value, bytes):
        raise TypeError(f"ASGI header value must be bytes, not {_type_name(value)}")
    return _exact_bytes(name), _exact_bytes(value)


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
    for pair in pairs:
        name, value = _update_pair(pair)
        header_set(headers, name, value)


def _update_pair(pair: object) -> tuple[Any, Any]:
    """A (name, value) pair of ``header_update``: a tuple or list of len() 2 (its own
    messages, not the interpreter's unpacking ones, so both twins say the same)."""
    if type(pair) is tuple and len(pair) == 2:
        return pair
    if not isinstance(pair, (tuple, list)):
        raise TypeError(f"header_update takes (name, value) pairs, not {_type_name(pair)}")
    if len(pair) != 2:
        raise TypeError(f"header_update takes (name, value) pairs, not {len(pair)} items")
    return pair[0], pair[1]


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
