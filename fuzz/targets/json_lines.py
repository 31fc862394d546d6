"""JSON-lines access records and the numbers in them: ``encode_access_record``,
``JsonLinesWriter``, ``error_body``, ``format_fixed`` and ``round_decimals``
(``_cy/json_lines.pxi``, ``stages.pxi``, ``access.pxi``, ``error_stage.pxi``)."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from types import ModuleType
from typing import Any

from fuzz._differential import compare
from fuzz._input import FuzzInput
from fuzz._shapes import Bytes, HostileError, HostileList, HostileStr, List, Str, Tuple, armed

FIELDS = ("method", "path", "status", "duration_ms", "user_agent", "request_id", "time")
FLOATS = (0.0, -0.0, 0.5, 1e-7, 2.5e-5, 1e16, 9.2e18, 1e300, float("inf"), float("-inf"), float("nan"))
Op = Callable[[ModuleType, FuzzInput], Any]


class Int(int):
    """An int subclass with its own repr, which a JSON record must not use."""

    def __repr__(self) -> str:
        return "Int()"


class Float(float):
    """A float subclass with its own repr, which a JSON record must not use."""

    def __repr__(self) -> str:
        return "Float()"


def _float(source: FuzzInput) -> float:
    if source.flag():
        return source.choice(FLOATS)
    value: float = struct.unpack("<d", source.raw(8).ljust(8, b"\0"))[0]
    return value


def _text(source: FuzzInput) -> str:
    text = source.text(48)
    kind = source.below(8)
    if kind == 0:
        return text + "\ud800"  # a lone surrogate: valid in a str, escaped in JSON
    if kind == 1:
        return text + "\x7f\u2028\U0001f600"
    return text


def _value(source: FuzzInput) -> Any:
    kind = source.below(16)
    if kind == 0:
        return None
    if kind == 1:
        return source.flag()
    if kind == 2:
        return source.number()
    if kind == 3:
        return Int(source.number())
    if kind == 4:
        return _float(source)
    if kind == 5:
        return Float(_float(source))
    if kind in (6, 7):
        return _text(source)
    if kind == 8:
        return Str(_text(source))
    if kind in (9, 10):
        return source.raw(48)
    if kind == 11:
        return Bytes(source.raw(48))
    if kind == 12:
        return bytearray(source.raw(48))
    return source.choice((object(), [1], {"a": 1}, memoryview(b"x")))


def _key(source: FuzzInput) -> Any:
    kind = source.below(10)
    if kind < 6:
        return source.choice(FIELDS)
    if kind < 8:
        return _text(source)
    if kind == 8:
        return armed(HostileStr(source.choice(FIELDS)), source)
    return source.choice((b"method", 1, None))


def _sequence(source: FuzzInput, items: list[Any]) -> Any:
    kind = source.below(8)
    if kind < 3:
        return tuple(items)
    if kind < 5:
        return items
    if kind == 5:
        return source.choice((List, Tuple))(items)
    if kind == 6:
        return armed(HostileList(items), source)
    return source.choice((None, dict.fromkeys(range(len(items))), iter(items)))


def _record(core: ModuleType, source: FuzzInput) -> Any:
    count = source.below(6)
    keys = [_key(source) for _ in range(count)]
    values = [_value(source) for _ in range(count + (source.below(8) == 0))]
    return core.encode_access_record(_sequence(source, keys), _sequence(source, values))


class Stream:
    """A binary stream that may take part of a write, none of it, or fail."""

    def __init__(self, source: FuzzInput) -> None:
        self.source = source
        self.taken = io.BytesIO()

    def write(self, data: bytes) -> Any:
        kind = self.source.below(8)
        if kind == 0:
            raise HostileError("write failed")
        if kind == 1:
            return 0
        if kind == 2:
            taken = self.source.below(len(data) + 1)
            self.taken.write(data[:taken])
            return taken
        self.taken.write(data)
        return None if kind == 3 else len(data)


def _writer(core: ModuleType, source: FuzzInput) -> Any:
    stream = Stream(source)
    writer = core.JsonLinesWriter(stream, source.choice((1, 2, 3, 64, 0, -1)))
    outcomes = []
    for _ in range(source.below(6)):
        try:
            if source.below(4):
                writer.write(source.choice((source.raw(16), Bytes(b"x\n"), "text", None)))
            else:
                writer.flush()
            outcomes.append(writer.pending)
        except Exception as exc:  # the writer's failures are part of what is compared
            outcomes.append((type(exc), str(exc)))
    return outcomes, stream.taken.getvalue()


def _format_fixed(core: ModuleType, source: FuzzInput) -> Any:
    value = source.choice((_float(source), source.number(), Float(_float(source)), True, "1"))
    return core.format_fixed(value, source.choice((0, 1, 2, 4, 9, 10, -1, True)))


def _round_decimals(core: ModuleType, source: FuzzInput) -> Any:
    value = source.choice((_float(source), Float(_float(source)), source.number()))
    return core.round_decimals(value, source.choice((0, 1, 3, 9, 10, -1)))


def _error_body(core: ModuleType, source: FuzzInput) -> Any:
    return core.error_body(source.choice((_text(source), None, source.number(), source.raw(8))))


OPS: tuple[tuple[str, Op], ...] = (
    ("encode_access_record", _record),
    ("JsonLinesWriter", _writer),
    ("format_fixed", _format_fixed),
    ("round_decimals", _round_decimals),
    ("error_body", _error_body),
)


def one_input(data: bytes) -> None:
    """Pick an operation from the first byte; build its arguments from the rest, per twin."""
    what, op = OPS[data[0] % len(OPS)] if data else OPS[0]
    compare(what, lambda core: op(core, FuzzInput(data[1:])))
