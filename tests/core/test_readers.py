"""The context plugins' header readers (``readers``): HeaderReader and UUIDHeaderReader,
against both core twins."""

from __future__ import annotations

import re
import sys
import uuid
from types import ModuleType
from typing import Any

import pytest

from fastmw.errors import WrongUUIDError

RID = "6f3b1a4e2c5d4e8f9a0b1c2d3e4f5a6b"
CANONICAL = "6f3b1a4e-2c5d-4e8f-9a0b-1c2d3e4f5a6b"
NEW_ID = re.compile(r"[0-9a-f]{32}")


def assert_new_id(value: Any) -> None:
    assert isinstance(value, str) and NEW_ID.fullmatch(value), value
    assert uuid.UUID(value).version == 4


# --------------------------------------------------------------------------- HeaderReader


def test_header_reader_returns_the_first_match_as_latin1_text(core: ModuleType) -> None:
    headers = [(b"host", b"a"), (b"X-Forwarded-For", b"caf\xe9"), (b"x-forwarded-for", b"second")]
    for name in ("x-forwarded-for", "X-FORWARDED-FOR", b"X-Forwarded-For"):
        reader = core.HeaderReader(name)
        assert reader.name == b"x-forwarded-for"
        assert reader(headers) == "café"
        assert reader(tuple(headers)) == "café" and reader(iter(headers)) == "café"
    assert core.HeaderReader("x-empty")([(b"x-empty", b"")]) == ""
    assert core.HeaderReader("absent")(headers) is None
    assert core.HeaderReader("absent")([]) is None


def test_header_reader_refuses_bad_names_and_entries(core: ModuleType) -> None:
    with pytest.raises(TypeError, match="header name must be str or bytes, not int"):
        core.HeaderReader(3)
    with pytest.raises(ValueError, match="not latin-1 encodable"):
        core.HeaderReader("☃")
    with pytest.raises(TypeError, match="ASGI header value must be bytes, not str"):
        core.HeaderReader("x")([(b"x", "text")])
    with pytest.raises(TypeError, match="ASGI header entry must have 2 items, not 3"):
        core.HeaderReader("x")([(b"y", b"1", b"2")])


# --------------------------------------------------------------------------- UUIDHeaderReader


@pytest.mark.parametrize(
    "sent", [RID, CANONICAL, CANONICAL.upper(), "{" + CANONICAL + "}", "urn:uuid:" + CANONICAL, str(uuid.uuid1())]
)
def test_uuid_reader_keeps_any_form_uuid_accepts(core: ModuleType, sent: str) -> None:
    reader = core.UUIDHeaderReader("X-Request-ID")
    assert reader.name == b"x-request-id"
    assert reader([(b"X-Request-Id", sent.encode())]) == sent


@pytest.mark.parametrize("headers", [[], [(b"x-request-id", b"")], [(b"other", RID.encode())]])
def test_uuid_reader_makes_a_new_id_when_none_is_sent(core: ModuleType, headers: list[Any]) -> None:
    reader = core.UUIDHeaderReader("x-request-id")
    first, second = reader(headers), reader(headers)
    assert_new_id(first)
    assert_new_id(second)
    assert first != second


def test_force_new_ignores_the_sent_header(core: ModuleType) -> None:
    reader = core.UUIDHeaderReader("x-request-id", force_new=True)
    assert reader.force_new
    # Not even read: a malformed entry cannot fail the request.
    value = reader([(b"x-request-id", RID.encode()), (b"x", "not bytes")])
    assert_new_id(value)
    assert value != RID


@pytest.mark.parametrize(
    "sent",
    [
        "nope",
        RID[:-1],
        RID + "0",
        # uuid.UUID accepts surrounding whitespace; control characters are still refused
        "\r\n" + RID[2:],
        RID[1:] + "\n",
        "\x0b" + RID[1:],
        "\x85" + RID[1:],
        "a" * 9000,
    ],
)
def test_invalid_values_raise_or_go_to_on_invalid(core: ModuleType, sent: str) -> None:
    headers = [(b"x-request-id", sent.encode("latin-1"))]
    with pytest.raises(ValueError) as info:
        core.UUIDHeaderReader("x-request-id")(headers)
    assert str(info.value).startswith(f"invalid UUID header value {sent[:64]!r}")
    seen: list[str] = []
    marker = object()

    def on_invalid(value: str) -> object:
        seen.append(value)
        return marker

    assert core.UUIDHeaderReader("x-request-id", on_invalid=on_invalid)(headers) is marker
    assert seen == [sent]


def test_on_invalid_may_raise(core: ModuleType) -> None:
    def refuse(value: str) -> None:
        raise WrongUUIDError(f"bad {value}")

    with pytest.raises(WrongUUIDError, match="bad nope"):
        core.UUIDHeaderReader("x-request-id", on_invalid=refuse)([(b"x-request-id", b"nope")])


def test_max_length_bounds_the_value(core: ModuleType) -> None:
    headers = [(b"x-request-id", RID.encode())]
    assert core.UUIDHeaderReader("x-request-id", max_length=32)(headers) == RID
    for limit in (0, 31):
        reader = core.UUIDHeaderReader("x-request-id", max_length=limit, on_invalid=lambda value: ("refused", value))
        assert reader.max_length == limit
        assert reader(headers) == ("refused", RID)
    assert core.UUIDHeaderReader("x-request-id").max_length == 8192


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"not-a-uuid", True),
        (b"tab\tinside", True),
        (b"caf\xe9", True),
        (b"a" * 50, True),
        (b"a" * 51, False),
        (b"a\r\nInjected: yes", False),
        (b"nul\x00", False),
        (b"del\x7f", False),
    ],
)
def test_without_validation_any_echoable_value_is_kept(core: ModuleType, sent: bytes, kept: bool) -> None:
    reader = core.UUIDHeaderReader("x-request-id", validate=False, max_length=50, on_invalid=lambda value: None)
    assert not reader.validate
    value = sent.decode("latin-1")
    assert reader([(b"x-request-id", sent)]) == (value if kept else None)


@pytest.mark.parametrize("max_length", [-1, "5", True, 1.5, None])
def test_max_length_must_be_a_non_negative_int(core: ModuleType, max_length: Any) -> None:
    with pytest.raises(ValueError, match=r"max_length must be an int from 0 to sys\.maxsize"):
        core.UUIDHeaderReader("x-request-id", max_length=max_length)


def test_on_invalid_must_be_callable(core: ModuleType) -> None:
    with pytest.raises(TypeError, match="on_invalid must be callable or None, not str"):
        core.UUIDHeaderReader("x-request-id", on_invalid="fallback")
    with pytest.raises(TypeError, match="header name must be str or bytes, not NoneType"):
        core.UUIDHeaderReader(None)


def test_attributes_are_read_only_except_the_uuid_switches(core: ModuleType) -> None:
    reader = core.UUIDHeaderReader("x-request-id")
    for obj, name in [
        (reader, "name"),
        (reader, "max_length"),
        (reader, "on_invalid"),
        (core.HeaderReader("a"), "name"),
    ]:
        with pytest.raises(AttributeError):
            setattr(obj, name, getattr(obj, name))
    reader.force_new = "yes"
    reader.validate = 0
    assert reader.force_new is True and reader.validate is False


def test_max_length_up_to_sys_maxsize(core: ModuleType) -> None:
    assert core.UUIDHeaderReader("x", max_length=sys.maxsize).max_length == sys.maxsize
    with pytest.raises(ValueError, match=r"max_length must be an int from 0 to sys\.maxsize"):
        core.UUIDHeaderReader("x", max_length=sys.maxsize + 1)
