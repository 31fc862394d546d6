"""Built-in plugins: the fast raw-header readers agree with the async hooks."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import HTTPConnection
from starlette.responses import Response

from fastmw._impl import core
from fastmw._route import AWAITED
from fastmw.errors import ConfigurationError, DateFormatError, WrongUUIDError
from fastmw.header_keys import HeaderKeys
from fastmw.plugins import (
    ApiKeyPlugin,
    CorrelationIdPlugin,
    DateHeaderPlugin,
    ForwardedForPlugin,
    Plugin,
    RequestIdPlugin,
    UserAgentPlugin,
)
from fastmw.plugins.base import MAX_UUID_HEADER, PluginUUIDBase
from tests.helpers import http_scope

PLAIN = [
    (ApiKeyPlugin, HeaderKeys.api_key),
    (ForwardedForPlugin, HeaderKeys.forwarded_for),
    (UserAgentPlugin, HeaderKeys.user_agent),
]
UUIDS = [(RequestIdPlugin, HeaderKeys.request_id), (CorrelationIdPlugin, HeaderKeys.correlation_id)]
HEX = "4d4b7a3e2f7c4e0b9a1c2b3d4e5f6a7b"


def fast_reader(plugin: Plugin) -> Any:
    """The sync reader a middleware on the chosen core would use, or None when it awaits the hooks."""
    route = plugin._route()
    return None if route.read == AWAITED else plugin._reader(route, core)


def headers_of(name: str, value: bytes | None) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"x")] + ([] if value is None else [(name.lower().encode(), value)])


def slow(plugin: Plugin, headers: list[tuple[bytes, bytes]]) -> Any:
    return asyncio.run(plugin.process_request(HTTPConnection(http_scope(headers=headers))))


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as exc:
        return type(exc).__name__, getattr(exc, "error_response", None)


@pytest.mark.parametrize(("cls", "key"), PLAIN + UUIDS + [(DateHeaderPlugin, HeaderKeys.date)])
def test_keys(cls: type[Plugin], key: HeaderKeys) -> None:
    assert cls.key is key


@pytest.mark.parametrize(("cls", "key"), PLAIN)
@given(value=st.one_of(st.none(), st.binary(max_size=40)))
def test_plain_fast_reader_matches_process_request(cls: type[Plugin], key: str, value: bytes | None) -> None:
    plugin = cls()
    headers = headers_of(key, value)
    reader = fast_reader(plugin)
    assert reader is not None
    assert reader(headers) == slow(plugin, headers)


@pytest.mark.parametrize(("cls", "key"), UUIDS)
@pytest.mark.parametrize("validate", [True, False])
@settings(max_examples=60)
@given(
    value=st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [
                HEX,
                HEX.upper(),
                "{" + HEX + "}",
                "urn:uuid:" + HEX,
                " " + HEX[1:],
                "\n" + HEX[1:],
                HEX[:-1] + "\x00",
                "+" + HEX[1:],
                str(uuid.UUID(HEX)),
            ]
        ).map(str.encode),
    )
)
def test_uuid_fast_reader_matches_process_request(
    cls: type[PluginUUIDBase], key: str, validate: bool, value: bytes
) -> None:
    plugin = cls(validate=validate)
    headers = headers_of(key, value)
    reader = fast_reader(plugin)
    assert reader is not None
    fast, hooks = outcome(lambda: reader(headers)), outcome(lambda: slow(plugin, headers))
    if not value:
        assert fast[0] == hooks[0] == "ok" and len(fast[1]) == 32 and uuid.UUID(fast[1]).version == 4
    else:
        assert fast == hooks
        if fast[0] == "ok":
            assert fast[1] == value.decode("latin-1")


@pytest.mark.parametrize("value", ["\n" + HEX[1:], " \r" + HEX[2:], HEX[:-1] + "\x00", "{" + HEX + "}\n"])
def test_uuid_with_control_characters_refused_even_unvalidated(value: str) -> None:
    for plugin in (RequestIdPlugin(), RequestIdPlugin(validate=False)):
        with pytest.raises(WrongUUIDError):
            fast_reader(plugin)(headers_of("x-request-id", value.encode("latin-1")))


def test_uuid_oversized_refused() -> None:
    big = ("-" * (MAX_UUID_HEADER + 1 - 32) + HEX).encode()
    assert uuid.UUID(big.decode())  # uuid.UUID alone would accept it
    for plugin in (RequestIdPlugin(), RequestIdPlugin(validate=False)):
        with pytest.raises(WrongUUIDError):
            fast_reader(plugin)(headers_of("x-request-id", big))


def test_uuid_options() -> None:
    with pytest.raises(ConfigurationError, match=r"UUID version 5 is not supported\."):
        RequestIdPlugin(version=5)
    teapot = Response(status_code=418)
    plugin = RequestIdPlugin(force_new_uuid=True, error_response=teapot)
    value = fast_reader(plugin)(headers_of("x-request-id", HEX.encode()))
    assert value != HEX and uuid.UUID(value).version == 4
    with pytest.raises(WrongUUIDError) as info:
        fast_reader(RequestIdPlugin(error_response=teapot))(headers_of("x-request-id", b"bad"))
    assert info.value.error_response is teapot
    assert len(plugin.get_new_uuid()) == 32


def test_overridden_hooks_disable_the_fast_reader() -> None:
    class Custom(UserAgentPlugin):
        async def extract_value_from_header_by_key(self, request: Any) -> Any:
            return "x"

    class CustomId(RequestIdPlugin):
        def get_new_uuid(self) -> str:
            return "0" * 32

    class Dated(DateHeaderPlugin):
        async def process_request(self, request: Any) -> Any:
            return 1

    assert fast_reader(Custom()) is None
    assert fast_reader(Dated()) is None
    reader = fast_reader(CustomId())
    assert reader is not None and reader(headers_of("x-request-id", None)) == "0" * 32


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (b"", None),
        (b"Wed, 01 Jan 2020 04:27:12 GMT", datetime.datetime(2020, 1, 1, 4, 27, 12)),
        (b"Wed, 01 Jan 2020 04:27:12", datetime.datetime(2020, 1, 1, 4, 27, 12)),
        (b"Wed, 01 Jan 2020 04:27:12   GMT  ", datetime.datetime(2020, 1, 1, 4, 27, 12)),
    ],
)
def test_date_header(value: bytes | None, expected: datetime.datetime | None) -> None:
    plugin = DateHeaderPlugin()
    headers = headers_of("date", value)
    assert fast_reader(plugin)(headers) == expected == slow(plugin, headers)


@pytest.mark.parametrize(
    "value",
    [
        b"Wed, 01 Jan 2020 04:27:12 CET",
        b"yesterday",
        b"Wed, 01 Foo 2020 04:27:12",
        b"\xff\xfe",
        b"Wed, 01 Jan 2020 04:27:12 UTC",
    ],
)
def test_bad_date(value: bytes) -> None:
    plugin = DateHeaderPlugin()
    assert isinstance(plugin.error_response, Response) and plugin.error_response.status_code == 400
    calls: tuple[Callable[[], object], ...] = (
        lambda: fast_reader(plugin)(headers_of("date", value)),
        lambda: slow(plugin, headers_of("date", value)),
    )
    for call in calls:
        with pytest.raises(DateFormatError) as info:
            call()
        assert info.value.error_response is plugin.error_response


def test_plugin_without_key_is_a_configuration_error() -> None:
    class NoKey(Plugin):
        key = 1  # type: ignore[assignment]

    with pytest.raises(ConfigurationError, match=r"Plugin NoKey is missing a valid key\."):
        slow(NoKey(), [])


@pytest.mark.parametrize(("cls", "key"), UUIDS)
def test_uuid_options_changed_after_the_middleware_was_built_still_apply(cls: type[PluginUUIDBase], key: str) -> None:
    # starlette-context reads force_new_uuid and validate on every request; so does fastmw's
    # compiled reader, which the plugin keeps in step with its attributes.
    plugin = cls()
    reader = fast_reader(plugin)
    assert reader is not None
    headers = headers_of(key, HEX.encode())
    assert reader(headers) == HEX
    plugin.force_new_uuid = True
    fresh = reader(headers)
    assert fresh != HEX and uuid.UUID(fresh).version == 4
    plugin.force_new_uuid = False
    not_a_uuid = headers_of(key, b"not-a-uuid")
    with pytest.raises(WrongUUIDError):
        reader(not_a_uuid)
    plugin.validate = False
    assert reader(not_a_uuid) == "not-a-uuid"
    # The same reader serves every middleware built around the plugin.
    assert fast_reader(plugin) is reader
