"""Raw header lists: lookups, edits and name/value encoding (``_cy/headers.pxi``)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from fuzz._differential import compare, describe
from fuzz._input import FuzzInput
from fuzz._shapes import NAMES, VALUES, entry, header_list, text_or_bytes

Op = Callable[[ModuleType, FuzzInput], Any]


def _name(source: FuzzInput) -> Any:
    return text_or_bytes(source, NAMES)


def _value(source: FuzzInput) -> Any:
    return text_or_bytes(source, VALUES)


def _edited(operation: str) -> Op:
    """``core.<operation>(headers, name, value)``, and the list as the call left it."""

    def run(core: ModuleType, source: FuzzInput) -> Any:
        headers = header_list(source)
        args = [_name(source)] if operation == "header_delete" else [_name(source), _value(source)]
        return getattr(core, operation)(headers, *args), describe(headers)

    return run


def _read(operation: str) -> Op:
    def run(core: ModuleType, source: FuzzInput) -> Any:
        headers = header_list(source)
        if operation in ("header_items", "header_keys", "header_values"):
            return getattr(core, operation)(headers), describe(headers)
        return getattr(core, operation)(headers, _name(source)), describe(headers)

    return run


def _get(core: ModuleType, source: FuzzInput) -> Any:
    headers = header_list(source)
    name = _name(source)
    default = source.choice((None, b"default", 0))
    return core.header_get(headers, name, default), describe(headers)


def _update(core: ModuleType, source: FuzzInput) -> Any:
    headers = header_list(source)
    pairs = [entry(source, headers) for _ in range(source.below(4))]
    other: Any = pairs
    if source.flag():
        try:
            other = dict(pairs)
        except Exception:  # unhashable or not pairs: give the list as it is
            other = pairs
    return core.header_update(headers, other), describe(headers)


def _vary(core: ModuleType, source: FuzzInput) -> Any:
    headers = header_list(source)
    return core.add_vary_header(headers, _value(source)), describe(headers)


def _encode(operation: str, words: tuple[bytes, ...]) -> Op:
    def run(core: ModuleType, source: FuzzInput) -> Any:
        return getattr(core, operation)(text_or_bytes(source, words))

    return run


def _message(core: ModuleType, source: FuzzInput) -> Any:
    message: Any = {"type": "http.response.start"}
    if source.flag():
        message["headers"] = header_list(source)
    if source.below(4) == 0:
        message = source.choice(([], None, "headers"))
    headers = core.message_headers(message)
    return headers, describe(message.get("headers")) if isinstance(message, dict) else None


def _mutable_headers(core: ModuleType, source: FuzzInput) -> Any:
    raw = header_list(source)
    headers = core.MutableHeaders(raw=raw)
    action = source.below(6)
    name, value = _name(source), _value(source)
    if action == 0:
        result = headers.get(name)
    elif action == 1:
        result = headers.getlist(name)
    elif action == 2:
        result = name in headers
    elif action == 3:
        result = headers.setdefault(name, value)
    elif action == 4:
        headers[name] = value
        result = None
    else:
        del headers[name]
        result = None
    return result, describe(raw)


OPS: tuple[tuple[str, Op], ...] = (
    ("header_get", _get),
    ("header_getlist", _read("header_getlist")),
    ("header_contains", _read("header_contains")),
    ("header_items", _read("header_items")),
    ("header_keys", _read("header_keys")),
    ("header_values", _read("header_values")),
    ("header_set", _edited("header_set")),
    ("header_setdefault", _edited("header_setdefault")),
    ("header_append", _edited("header_append")),
    ("header_delete", _edited("header_delete")),
    ("header_update", _update),
    ("add_vary_header", _vary),
    ("encode_header_name", _encode("encode_header_name", NAMES)),
    ("encode_header_value", _encode("encode_header_value", VALUES)),
    ("is_header_value", _encode("is_header_value", VALUES)),
    ("message_headers", _message),
    ("MutableHeaders", _mutable_headers),
)


def one_input(data: bytes) -> None:
    """Pick an operation from the first byte; build its arguments from the rest, per twin."""
    what, op = OPS[data[0] % len(OPS)] if data else OPS[0]
    compare(what, lambda core: op(core, FuzzInput(data[1:])))
