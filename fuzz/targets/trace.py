"""W3C trace context: traceparent and tracestate parsing, formatting, and the request's
context read from raw headers (``_cy/trace.pxi``, ``tracestate.pxi``, ``trace_context.pxi``)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from fuzz._differential import compare
from fuzz._input import FuzzInput
from fuzz._shapes import HostileStr, Str, armed, header_list, shaped

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATES = (b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", b"a=1", b"x@y=z", b"", b" , ", b"k=" + b"v" * 257)
ALPHABET = b"0123456789abcdefABCDEF- \t,=@*/_xz\x00\xff"
Op = Callable[[ModuleType, FuzzInput], Any]


def _mutated(source: FuzzInput, seed: bytes) -> bytes:
    """``seed`` with a few bytes replaced, inserted or cut: near-valid values reach the checks."""
    raw = bytearray(seed)
    for _ in range(source.below(4)):
        at = source.below(len(raw) + 1)
        kind = source.below(4)
        if kind == 0 and at < len(raw):
            raw[at] = source.choice(ALPHABET)
        elif kind == 1:
            raw.insert(at, source.choice(ALPHABET))
        elif kind == 2:
            del raw[at : at + source.below(4)]
        else:
            raw[at:at] = source.raw(8)
    return bytes(raw)


def _traceparent(source: FuzzInput) -> bytes:
    return _mutated(source, TRACEPARENT) if source.below(4) else source.raw(80)


def _parse_traceparent(core: ModuleType, source: FuzzInput) -> Any:
    return core.parse_traceparent(shaped(source, _traceparent(source)))


def _parse_tracestate(core: ModuleType, source: FuzzInput) -> Any:
    values = [shaped(source, _mutated(source, source.choice(TRACESTATES))) for _ in range(source.below(5))]
    return core.parse_tracestate(*values)


def _id(source: FuzzInput, size: int) -> Any:
    text = _mutated(source, TRACEPARENT[3 : 3 + size] if size == 32 else TRACEPARENT[36:52]).decode("latin-1")
    kind = source.below(8)
    if kind == 6:
        return Str(text)
    if kind == 7:
        return armed(HostileStr(text), source)
    return text


def _flags(source: FuzzInput) -> Any:
    return source.choice((0, 1, 3, 255, 256, -1, True, 1.0, None, 2**64, source.byte()))


def _format_traceparent(core: ModuleType, source: FuzzInput) -> Any:
    return core.format_traceparent(_id(source, 32), _id(source, 16), _flags(source))


def _context(core: ModuleType, source: FuzzInput) -> Any:
    parent = _id(source, 16) if source.flag() else None
    state = shaped(source, source.choice(TRACESTATES)) if source.flag() else None
    context = core.TraceContext(_id(source, 32), _id(source, 16), parent, _flags(source), state)
    return context, context.traceparent, context.child_traceparent(), context.sampled


def _trace_headers(source: FuzzInput) -> Any:
    """A header list, with traceparent and tracestate entries put in by the input."""
    headers = header_list(source)
    if type(headers) is list:
        for _ in range(source.below(4)):
            name = source.choice((b"traceparent", b"TraceParent", b"tracestate", b"TRACESTATE"))
            value = _traceparent(source) if name.lower() == b"traceparent" else source.choice(TRACESTATES)
            headers.insert(source.below(len(headers) + 1), (name, value))
    return headers


def _trace_from_headers(core: ModuleType, source: FuzzInput) -> Any:
    return core.trace_from_headers(_trace_headers(source), source.flag())


def _replace_trace_headers(core: ModuleType, source: FuzzInput) -> Any:
    headers = _trace_headers(source)
    context = core.trace_from_headers([(b"traceparent", TRACEPARENT), (b"tracestate", b"a=1")])
    given = context if source.below(8) else source.choice((None, "00-1-2-3"))
    return core.replace_trace_headers(headers, given)


OPS: tuple[tuple[str, Op], ...] = (
    ("parse_traceparent", _parse_traceparent),
    ("parse_tracestate", _parse_tracestate),
    ("format_traceparent", _format_traceparent),
    ("TraceContext", _context),
    ("trace_from_headers", _trace_from_headers),
    ("replace_trace_headers", _replace_trace_headers),
)


def one_input(data: bytes) -> None:
    """Pick an operation from the first byte; build its arguments from the rest, per twin."""
    what, op = OPS[data[0] % len(OPS)] if data else OPS[0]
    compare(what, lambda core: op(core, FuzzInput(data[1:])), random_ids=TRACEPARENT + data)
