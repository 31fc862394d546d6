"""Hostile Python objects for the differential tests, built fresh for each twin from plain
recipes (hypothesis draws the recipe; ``build`` makes the objects), and ``shape``, which
describes a result without calling any method those objects override."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

# --------------------------------------------------------------------------- items (names and values)


class Bytes(bytes):
    """A plain bytes subclass."""


class LyingBytes(bytes):
    """A bytes subclass whose own methods all lie: its content is what counts."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 1

    def __len__(self) -> int:
        return 3

    def __iter__(self) -> Any:
        return iter(b"\r\n")

    def __getitem__(self, item: Any) -> Any:
        return b"X"

    def __add__(self, other: Any) -> Any:
        return b"added"

    def lower(self) -> bytes:
        return b"lie"

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return "lie"

    def __bytes__(self) -> bytes:
        return b"lie"


class RaisingBytes(bytes):
    """A bytes subclass whose comparison, hash and length raise."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ raised")

    def __hash__(self) -> int:
        raise RuntimeError("__hash__ raised")

    def __len__(self) -> int:
        raise RuntimeError("__len__ raised")


class Text(str):
    """A plain str subclass."""


class LyingText(str):
    """A str subclass whose own methods lie: its text is what counts."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 1

    def __len__(self) -> int:
        return 1

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return b"lie"

    def lower(self) -> str:
        return "lie"

    def isprintable(self) -> bool:
        return False

    def __str__(self) -> str:
        return "lie"


class LyingInt(int):
    """An int whose comparisons and index lie: a status the core must not read as a C value."""

    def __eq__(self, other: object) -> bool:
        return True

    def __lt__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return False

    def __index__(self) -> int:
        return 200

    __hash__ = int.__hash__


ITEMS: dict[str, Any] = {
    "name": b"x-a",
    "NAME": b"X-A",
    "vary": b"vary",
    "empty": b"",
    "crlf": b"a\r\nb",
    "value": b"v1",
    "Bytes": lambda: Bytes(b"X-A"),
    "Bytes-value": lambda: Bytes(b"v2"),
    "LyingBytes": lambda: LyingBytes(b"X-a"),
    "LyingBytes-value": lambda: LyingBytes(b"v\x00"),
    "RaisingBytes": lambda: RaisingBytes(b"x-a"),
    "bytearray": lambda: bytearray(b"x-a"),
    "memoryview": lambda: memoryview(b"x-a"),
    "str": "x-a",
    "Text": lambda: Text("X-A"),
    "LyingText": lambda: LyingText("x-A"),
    "int": 7,
    "None": None,
}
ITEM_NAMES = sorted(ITEMS)


def item(name: str) -> Any:
    made = ITEMS[name]
    return made() if callable(made) else made


# --------------------------------------------------------------------------- entries and header lists

Pair = namedtuple("Pair", "name value")


class TupleSub(tuple):  # type: ignore[type-arg]
    """A plain tuple subclass."""


class ListSub(list):  # type: ignore[type-arg]
    """A plain list subclass."""


def _lying_len(base: type, size: int) -> type:
    return type(f"{base.__name__}Len{size}", (base,), {"__len__": lambda self: size})


class RaisingLen(list):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise RuntimeError("__len__ raised")


class LyingItems(tuple):  # type: ignore[type-arg]
    """A tuple subclass whose [i] gives other items than it holds."""

    def __getitem__(self, index: Any) -> Any:
        return b"x-a" if index == 0 else b"lie"


class NoItems(tuple):  # type: ignore[type-arg]
    def __getitem__(self, index: Any) -> Any:
        raise KeyError(index)


def _mutating(outer: list[Any], action: str) -> type:
    """A list subclass whose first __len__ changes ``outer`` (the header list being read):
    once, so a loop that meets the entry again (after an insert before it) still ends."""
    done: list[bool] = []

    def __len__(self: list[Any]) -> int:
        if done:
            return list.__len__(self)
        done.append(True)
        if action == "clear":
            outer.clear()
        elif action == "pop" and outer:
            outer.pop()
        elif action == "append":
            outer.append((b"x-a", b"appended"))
        elif action == "insert":
            outer.insert(0, (b"vary", b"inserted"))
        elif action == "replace" and outer:
            outer[:] = [(b"x-a", b"replaced")]
        return list.__len__(self)

    return type(f"Mutating{action.title()}", (list,), {"__len__": __len__})


ENTRY_KINDS = (
    "tuple",
    "tuple",
    "tuple",
    "list",
    "Pair",
    "TupleSub",
    "ListSub",
    "TupleLen2-empty",
    "ListLen2-empty",
    "ListLen3",
    "TupleLen0",
    "RaisingLen",
    "LyingItems",
    "NoItems",
    "mutating-clear",
    "mutating-pop",
    "mutating-append",
    "mutating-insert",
    "mutating-replace",
    "one",
    "three",
    "int",
    "bytes",
)


def entry(kind: str, name: str, value: str, outer: list[Any]) -> Any:
    pair = (item(name), item(value))
    if kind == "tuple":
        return pair
    if kind == "list":
        return list(pair)
    if kind == "Pair":
        return Pair(*pair)
    if kind == "TupleSub":
        return TupleSub(pair)
    if kind == "ListSub":
        return ListSub(pair)
    if kind == "TupleLen2-empty":
        return _lying_len(tuple, 2)()
    if kind == "ListLen2-empty":
        return _lying_len(list, 2)()
    if kind == "ListLen3":
        return _lying_len(list, 3)(pair)
    if kind == "TupleLen0":
        return _lying_len(tuple, 0)(pair)
    if kind == "RaisingLen":
        return RaisingLen(pair)
    if kind == "LyingItems":
        return LyingItems(pair)
    if kind == "NoItems":
        return NoItems(pair)
    if kind.startswith("mutating-"):
        return _mutating(outer, kind.split("-", 1)[1])(pair)
    if kind == "one":
        return (pair[0],)
    if kind == "three":
        return (*pair, b"x")
    if kind == "int":
        return 3
    return b"xy"


CONTAINER_KINDS = ("list", "list", "ListSub", "ListLen1", "ListLen9", "tuple", "TupleSub", "iter", "dict")


def headers(recipe: tuple[str, list[tuple[str, str, str]]]) -> Any:
    """The header list (or other iterable) a recipe describes, its entries built afresh."""
    container, entries = recipe
    outer: list[Any] = []
    outer.extend(entry(kind, name, value, outer) for kind, name, value in entries)
    if container == "list":
        return outer
    if container == "ListSub":
        return _rebind(ListSub(outer), outer)
    if container == "ListLen1":
        return _rebind(_lying_len(list, 1)(outer), outer)
    if container == "ListLen9":
        return _rebind(_lying_len(list, 9)(outer), outer)
    if container == "tuple":
        return tuple(outer)
    if container == "TupleSub":
        return TupleSub(outer)
    if container == "iter":
        return iter(outer)
    return {index: item for index, item in enumerate(outer)}


def _rebind(made: list[Any], outer: list[Any]) -> list[Any]:
    """Mutating entries change the list they were made for: point them at ``made``."""
    for value in made:
        if type(value).__name__.startswith("Mutating"):
            value.__class__ = _mutating(made, type(value).__name__[len("Mutating") :].lower())
    return made


# --------------------------------------------------------------------------- comparing results


def shape(value: Any) -> Any:
    """A plain description of ``value`` made without calling any method it overrides."""
    if isinstance(value, BaseException):
        return ("raised", type(value).__name__, str(value))
    if isinstance(value, bytes):
        return (type(value).__name__, bytes.__getitem__(value, slice(None)))
    if isinstance(value, str):
        return (type(value).__name__, str.__str__(value))
    if isinstance(value, bytearray):
        return (type(value).__name__, bytes(bytearray.__getitem__(value, slice(None))))
    if isinstance(value, memoryview):
        return ("memoryview", value.tobytes())
    if isinstance(value, tuple):
        return (type(value).__name__, [shape(part) for part in tuple.__iter__(value)])
    if isinstance(value, list):
        return (type(value).__name__, [shape(part) for part in list.__iter__(value)])
    if isinstance(value, dict):
        return (type(value).__name__, [(shape(k), shape(v)) for k, v in dict.items(value)])
    if value is None or type(value) in (bool, int, float):
        return value
    return type(value).__name__


def outcome(func: Any, *args: Any) -> Any:
    """``shape`` of what ``func(*args)`` returns, or of the exception it raises."""
    try:
        return ("ok", shape(func(*args)))
    except Exception as error:  # the comparison is the point
        return ("error", type(error).__name__, str(error))
