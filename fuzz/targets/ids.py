"""Request ids: UUID and safe-id checks, the header readers of the context plugins and the
request id stage's validation of a sent id (``_cy/ids.pxi``, ``readers.pxi``, ``stages.pxi``)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from fuzz._differential import compare
from fuzz._input import FuzzInput
from fuzz._shapes import NAMES, HostileError, header_list, text_or_bytes

IDS = (
    "550e8400-e29b-41d4-a716-446655440000",
    "{550e8400-e29b-41d4-a716-446655440000}",
    "urn:uuid:550e8400-e29b-41d4-a716-446655440000",
    "7c5a3e0b9d2f4a1e8b6c0d9e8f7a6b5c",
    " 7c5a3e0b9d2f4a1e8b6c0d9e8f7a6b5c\n",
    "req-42.abc_~+/=:@",
    "",
)
Op = Callable[[ModuleType, FuzzInput], Any]


def _text(source: FuzzInput) -> Any:
    if source.flag():
        return source.choice(IDS)
    return text_or_bytes(source, tuple(value.encode() for value in IDS))


def _checked(operation: str) -> Op:
    def run(core: ModuleType, source: FuzzInput) -> Any:
        return getattr(core, operation)(_text(source))

    return run


def _visible_ascii(core: ModuleType, source: FuzzInput) -> Any:
    return core.is_visible_ascii(_text(source), source.choice((0, 1, 8, 36, 128, -1, 2**63 - 1)))


def _headers_with_id(source: FuzzInput) -> Any:
    headers = header_list(source)
    if type(headers) is list and source.flag():
        headers.insert(0, (source.choice(NAMES), source.choice(IDS).encode("latin-1") + source.raw(4)))
    return headers


def _on_invalid(source: FuzzInput) -> Any:
    kind = source.below(4)
    if kind == 0:
        return None

    def refused(value: str) -> Any:
        if kind == 1:
            raise HostileError(f"refused {value!r}")
        return f"refused {value!r}" if kind == 2 else None

    return refused


def _header_reader(core: ModuleType, source: FuzzInput) -> Any:
    reader = core.HeaderReader(text_or_bytes(source, NAMES))
    return reader.name, reader(_headers_with_id(source))


def _uuid_reader(core: ModuleType, source: FuzzInput) -> Any:
    reader = core.UUIDHeaderReader(
        text_or_bytes(source, NAMES),
        force_new=source.below(8) == 0,
        validate=source.below(4) != 0,
        max_length=source.choice((8192, 36, 32, 0, 1)),
        on_invalid=_on_invalid(source),
    )
    return reader(_headers_with_id(source))


def _validator(source: FuzzInput) -> Any:
    kind = source.below(4)
    if kind == 0:
        return None
    if kind == 1:
        return lambda value: len(value) % 2 == 0
    if kind == 2:
        return lambda value: value.upper()  # a transformer

    def failing(value: str) -> Any:
        raise HostileError(f"validator on {value!r}")

    return failing


def _default_resolve(core: ModuleType, source: FuzzInput) -> Any:
    reports: list[Any] = []
    stage = core.RequestIdStage(
        b"x-request-id",
        "request_id",
        validator=_validator(source),
        transformer=_validator(source),
        max_length=source.choice((128, 36, 1, 8192)),
        refuse_invalid=source.flag(),
        report=lambda *args: reports.append(args),
    )
    raw = source.choice(IDS).encode("latin-1") if source.flag() else source.raw(160)
    return stage.default_resolve(source.choice((raw, raw, raw, None, b""))), reports


OPS: tuple[tuple[str, Op], ...] = (
    ("is_uuid", _checked("is_uuid")),
    ("is_uuid4", _checked("is_uuid4")),
    ("is_safe_id", _checked("is_safe_id")),
    ("is_visible_ascii", _visible_ascii),
    ("HeaderReader", _header_reader),
    ("UUIDHeaderReader", _uuid_reader),
    ("RequestIdStage.default_resolve", _default_resolve),
)


def one_input(data: bytes) -> None:
    """Pick an operation from the first byte; build its arguments from the rest, per twin."""
    what, op = OPS[data[0] % len(OPS)] if data else OPS[0]
    compare(what, lambda core: op(core, FuzzInput(data[1:])), random_ids=" ".join(IDS).encode() + data)
