"""Hostile argument shapes drawn from the fuzz input: subclasses of bytes, str, list and
tuple, objects whose ``__len__``, ``__eq__`` or ``__hash__`` lie or raise, and entries that
change the header list while it is read. Every object is rebuilt for each twin from the
same input, so the two get equal (not shared) arguments."""

from __future__ import annotations

from typing import Any

from fuzz._input import FuzzInput

# Names and values the core looks for, so that lookups find what they look for.
NAMES = (
    b"x-request-id",
    b"X-Request-ID",
    b"traceparent",
    b"TraceParent",
    b"tracestate",
    b"vary",
    b"set-cookie",
    b"content-type",
    b"user-agent",
    b"x-correlation-id",
)
VALUES = (
    b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    b"7c5a3e0b9d2f4a1e8b6c0d9e8f7a6b5c",
    b"550e8400-e29b-41d4-a716-446655440000",
    b"Accept-Encoding",
    b"a=1\r\nx-injected: 1",
    b"\x00",
    b"caf\xe9",
    b"",
)
# What a hostile __len__ says, or None for "raise".
LENGTHS = (0, 1, 2, 3, -1, None)


class HostileError(Exception):
    """Raised by a hostile object's method; both twins must let it through the same way."""


class Bytes(bytes):
    """A bytes subclass that overrides nothing."""


class Str(str):
    """A str subclass that overrides nothing."""


class List(list):  # type: ignore[type-arg]
    """A list subclass that overrides nothing."""


class Tuple(tuple):  # type: ignore[type-arg]
    """A tuple subclass that overrides nothing."""


class Trap:
    """What a hostile object does when its method runs: lie, raise, or change a header list
    (once, so that no loop over the list grows it for ever)."""

    __slots__ = ("action", "headers", "length", "sprung")

    def __init__(self, source: FuzzInput, headers: list[Any] | None) -> None:
        self.length = source.choice(LENGTHS)
        self.action = source.below(6)
        self.headers = headers
        self.sprung = False

    def spring(self, method: str) -> None:
        if self.action == 0:
            raise HostileError(f"hostile {method}")
        if self.sprung or self.headers is None:
            return
        self.sprung = True
        headers = self.headers
        if self.action == 1:
            headers.clear()
        elif self.action == 2:
            headers.append((b"x-request-id", b"appended"))
        elif self.action == 3 and headers:
            del headers[0]

    def len(self, real: int) -> int:
        self.spring("__len__")
        if self.length is None:
            raise HostileError("hostile __len__")
        return real if self.action == 5 else self.length

    def eq(self, equal: bool) -> bool:
        self.spring("__eq__")
        return equal if self.action == 5 else bool(self.length)


class HostileBytes(bytes):
    """bytes whose __len__, __eq__ and __hash__ lie, raise or change the header list."""

    trap: Trap

    def __len__(self) -> int:
        return self.trap.len(bytes.__len__(self))

    def __eq__(self, other: object) -> bool:
        return self.trap.eq(bytes.__eq__(self, other) is True)

    def __hash__(self) -> int:
        self.trap.spring("__hash__")
        return bytes.__hash__(self)


class HostileStr(str):
    """str whose __len__, __eq__ and __hash__ lie, raise or change the header list."""

    trap: Trap

    def __len__(self) -> int:
        return self.trap.len(str.__len__(self))

    def __eq__(self, other: object) -> bool:
        return self.trap.eq(str.__eq__(self, other) is True)

    def __hash__(self) -> int:
        self.trap.spring("__hash__")
        return str.__hash__(self)


class HostileList(list):  # type: ignore[type-arg]
    """A list whose __len__ lies, raises or changes the header list."""

    trap: Trap

    def __len__(self) -> int:
        return self.trap.len(list.__len__(self))


class HostileTuple(tuple):  # type: ignore[type-arg]
    """A tuple whose __len__ lies, raises or changes the header list."""

    trap: Trap

    def __len__(self) -> int:
        return self.trap.len(tuple.__len__(self))


def armed(obj: Any, source: FuzzInput, headers: list[Any] | None = None) -> Any:
    """``obj`` (a Hostile* instance) with its trap set from the input."""
    obj.trap = Trap(source, headers)
    return obj


def octets(source: FuzzInput, words: tuple[bytes, ...]) -> bytes:
    """Bytes for a header name or value: a known word, or raw bytes from the input."""
    return source.choice(words) if source.flag() else source.raw(80)


def text_or_bytes(source: FuzzInput, words: tuple[bytes, ...], headers: list[Any] | None = None) -> Any:
    """A name or value as a caller may pass one: bytes or str, exact or not, or a wrong type."""
    return shaped(source, octets(source, words), headers)


def shaped(source: FuzzInput, raw: bytes, headers: list[Any] | None = None) -> Any:
    """``raw`` as a caller may pass it: bytes or str, exact or a subclass (hostile ones armed
    against ``headers``), or a wrong type."""
    kind = source.below(16)
    if kind < 5:
        return raw
    if kind < 9:
        return raw.decode("latin-1") if source.flag() else raw.decode("utf-8", "replace")
    if kind == 9:
        return Bytes(raw)
    if kind == 10:
        return Str(raw.decode("latin-1"))
    if kind == 11:
        return armed(HostileBytes(raw), source, headers)
    if kind == 12:
        return armed(HostileStr(raw.decode("latin-1")), source, headers)
    if kind == 13:
        return bytearray(raw)
    if kind == 14:
        return memoryview(raw)
    return source.choice((None, 0, 1.5, [raw], (raw,)))


def entry(source: FuzzInput, headers: list[Any]) -> Any:
    """One raw header entry: mostly an exact (bytes, bytes) tuple, else any hostile shape."""
    kind = source.below(12)
    if kind < 5:
        return (octets(source, NAMES), octets(source, VALUES))
    name = text_or_bytes(source, NAMES, headers) if source.below(3) == 0 else octets(source, NAMES)
    value = text_or_bytes(source, VALUES, headers) if source.below(3) == 0 else octets(source, VALUES)
    items = [name, value][: source.choice((2, 2, 2, 1, 0))]
    if source.below(8) == 0:
        items.append(b"extra")
    if kind == 5:
        return tuple(items)
    if kind == 6:
        return items
    if kind == 7:
        return Tuple(items)
    if kind == 8:
        return List(items)
    if kind == 9:
        return armed(HostileTuple(items), source, headers)
    if kind == 10:
        return armed(HostileList(items), source, headers)
    return source.choice((None, b"x-request-id", "x-request-id: 1", 3))


def header_list(source: FuzzInput) -> Any:
    """A raw header list: mostly an exact list, else a subclass, a tuple or a wrong type."""
    kind = source.below(10)
    headers: list[Any] = armed(HostileList(), source, None) if kind == 7 else List() if kind == 6 else []
    if kind == 7:
        headers.trap.headers = headers  # type: ignore[attr-defined]
    for _ in range(source.below(7)):
        list.append(headers, entry(source, headers))
    if kind <= 7:
        return headers
    if kind == 8:
        return tuple(headers)
    return source.choice((None, b"x-request-id", {b"x-request-id": b"1"}, iter(headers)))
