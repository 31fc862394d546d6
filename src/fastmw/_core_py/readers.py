"""Header readers: the context plugins' values read from raw request headers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from fastmw._core_py._common import MAX_UUID_HEADER, _shown, _type_name
from fastmw._core_py.headers import _lookup_key, encode_header_name, header_get, is_header_value
from fastmw._core_py.ids import is_uuid, new_request_id


def _pair(item: Any, what: str) -> tuple[Any, Any]:
    """``item`` as a 2-tuple; the same TypeError in both twins otherwise."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"{what} must be a pair, not {_type_name(item)} {_shown(repr(item))}")
    return item[0], item[1]


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
            elif is_header_value(value):
                return value
        if self._on_invalid is None:
            raise ValueError(f"invalid UUID header value {_shown(value)}")
        return self._on_invalid(value)


def _reader_pair(pair: Any) -> tuple[Any, Callable[[Any], Any]]:
    key, reader = _pair(pair, "a context reader entry")
    if not callable(reader):
        raise TypeError(f"context reader for {key!r} must be callable, not {_type_name(reader)}")
    return key, reader


def _echo_pair(pair: Any) -> tuple[Any, bytes]:
    key, name = _pair(pair, "an echo entry")
    return key, encode_header_name(name)
