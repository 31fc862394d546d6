"""The same apps and assertions run against starlette-context 0.5.1 and fastmw."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from starlette.middleware import Middleware
from starlette.responses import Response

from tests._ctx_apps import LIBRARIES, UUID_HEX, Lib, get, header_values, make_app, ws_connect
from tests.helpers import call_app, http_scope

MIDDLEWARES = ("ContextMiddleware", "RawContextMiddleware")


@pytest.fixture(params=LIBRARIES)
def lib(request: pytest.FixtureRequest) -> Lib:
    return Lib.load(request.param)


@pytest.fixture(params=MIDDLEWARES)
def middleware_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def build(lib: Lib, middleware_name: str, plugins: Any = (), seen: list[Any] | None = None, **options: Any) -> Any:
    app = make_app(lib, seen if seen is not None else [])
    cls = getattr(lib.middleware, middleware_name)
    app.user_middleware.insert(0, Middleware(cls, plugins=plugins, **options))
    return app


def all_plugins(lib: Lib) -> tuple[Any, ...]:
    p = lib.plugins
    return (
        p.RequestIdPlugin(),
        p.CorrelationIdPlugin(),
        p.UserAgentPlugin(),
        p.ForwardedForPlugin(),
        p.ApiKeyPlugin(),
        p.DateHeaderPlugin(),
    )


def test_public_names(lib: Lib) -> None:
    assert callable(lib.root.request_cycle_context)
    for name in ("ContextMiddleware", "RawContextMiddleware"):
        assert hasattr(lib.middleware, name)
    for name in (
        "Plugin",
        "RequestIdPlugin",
        "CorrelationIdPlugin",
        "UserAgentPlugin",
        "ForwardedForPlugin",
        "DateHeaderPlugin",
        "ApiKeyPlugin",
    ):
        assert hasattr(lib.plugins, name)
    for name in (
        "ConfigurationError",
        "ContextDoesNotExistError",
        "MiddleWareValidationError",
        "WrongUUIDError",
        "DateFormatError",
    ):
        assert issubclass(getattr(lib.errors, name), Exception)
    assert [(m.name, m.value) for m in lib.header_keys.HeaderKeys] == [
        ("api_key", "X-API-Key"),
        ("correlation_id", "X-Correlation-ID"),
        ("request_id", "X-Request-ID"),
        ("date", "Date"),
        ("forwarded_for", "X-Forwarded-For"),
        ("user_agent", "User-Agent"),
    ]


def test_every_plugin_reads_its_header(lib: Lib, middleware_name: str) -> None:
    app = build(lib, middleware_name, all_plugins(lib))
    sent = {
        "X-Request-ID": UUID_HEX,
        "X-Correlation-ID": str(uuid.UUID(UUID_HEX)),
        "User-Agent": "ua/1",
        "X-Forwarded-For": "10.0.0.1",
        "X-API-Key": "secret",
        "Date": "Wed, 01 Jan 2020 04:27:12 GMT",
    }
    rec = get(app, "/", sent)
    assert rec.status == 200
    assert json.loads(rec.body) == {**sent, "Date": "2020-01-01 04:27:12"}
    assert header_values(rec, b"x-request-id") == [UUID_HEX.encode()]
    assert header_values(rec, b"x-correlation-id") == [sent["X-Correlation-ID"].encode()]
    assert header_values(rec, b"user-agent") == []


def test_missing_headers(lib: Lib, middleware_name: str) -> None:
    rec = get(build(lib, middleware_name, all_plugins(lib)))
    data = json.loads(rec.body)
    assert {k: v for k, v in data.items() if "ID" not in k} == {
        "User-Agent": "None",
        "X-Forwarded-For": "None",
        "X-API-Key": "None",
        "Date": "None",
    }
    for key in ("X-Request-ID", "X-Correlation-ID"):
        assert uuid.UUID(data[key]).version == 4 and len(data[key]) == 32
        assert header_values(rec, key.lower().encode()) == [data[key].encode()]


@pytest.mark.parametrize(
    "value",
    [
        UUID_HEX.upper(),
        "{" + UUID_HEX + "}",
        "urn:uuid:" + str(uuid.UUID(UUID_HEX)),
        str(uuid.uuid1()),
        "00000000-0000-0000-0000-000000000000",
    ],
)
def test_uuid_forms_accepted_and_echoed_as_sent(lib: Lib, middleware_name: str, value: str) -> None:
    rec = get(build(lib, middleware_name, (lib.plugins.RequestIdPlugin(),)), "/", {"X-Request-ID": value})
    assert json.loads(rec.body) == {"X-Request-ID": value}
    assert header_values(rec, b"x-request-id") == [value.encode()]


@pytest.mark.parametrize("value", ["nope", UUID_HEX[:-1], UUID_HEX + "0", "g" * 32])
def test_bad_uuid_gets_the_error_response_only(lib: Lib, middleware_name: str, value: str) -> None:
    rec = get(build(lib, middleware_name, (lib.plugins.RequestIdPlugin(),)), "/", {"X-Request-ID": value})
    assert rec.status == 400 and rec.body == b""
    assert header_values(rec, b"x-request-id") == []


def test_plugin_error_response_and_default_error_response(lib: Lib, middleware_name: str) -> None:
    teapot = Response("tea", status_code=418)
    plugin = lib.plugins.CorrelationIdPlugin(error_response=teapot)
    rec = get(build(lib, middleware_name, (plugin,)), "/", {"X-Correlation-ID": "x"})
    assert (rec.status, rec.body) == (418, b"tea")
    gone = Response("gone", status_code=410)
    rec = get(
        build(lib, middleware_name, (lib.plugins.RequestIdPlugin(),), default_error_response=gone),
        "/",
        {"X-Request-ID": "x"},
    )
    assert (rec.status, rec.body) == (410, b"gone")


def test_force_new_uuid_and_no_validation(lib: Lib, middleware_name: str) -> None:
    plugins = (lib.plugins.RequestIdPlugin(force_new_uuid=True), lib.plugins.CorrelationIdPlugin(validate=False))
    rec = get(build(lib, middleware_name, plugins), "/", {"X-Request-ID": UUID_HEX, "X-Correlation-ID": "anything"})
    data = json.loads(rec.body)
    assert data["X-Request-ID"] != UUID_HEX and len(data["X-Request-ID"]) == 32
    assert data["X-Correlation-ID"] == "anything"


@pytest.mark.parametrize("value", ["Wed, 01 Jan 2020 04:27:12 CET", "2020-01-01", "Wed, 32 Jan 2020 04:27:12"])
def test_bad_date(lib: Lib, middleware_name: str, value: str) -> None:
    rec = get(build(lib, middleware_name, (lib.plugins.DateHeaderPlugin(),)), "/", {"Date": value})
    assert rec.status == 400


def test_date_without_zone(lib: Lib, middleware_name: str) -> None:
    rec = get(
        build(lib, middleware_name, (lib.plugins.DateHeaderPlugin(),)), "/", {"Date": "Wed, 01 Jan 2020 04:27:12"}
    )
    assert json.loads(rec.body) == {"Date": "2020-01-01 04:27:12"}


def test_writes_from_threads_and_child_tasks_are_shared(lib: Lib, middleware_name: str) -> None:
    rec = get(build(lib, middleware_name, (lib.plugins.UserAgentPlugin(),)), "/thread", {"User-Agent": "ua"})
    assert json.loads(rec.body) == {"User-Agent": "ua", "thread": "yes", "child": "yes"}


def test_background_task_sees_context(lib: Lib, middleware_name: str) -> None:
    seen: list[Any] = []
    get(build(lib, middleware_name, (lib.plugins.UserAgentPlugin(),), seen), "/background", {"User-Agent": "ua"})
    assert seen == [{"User-Agent": "ua"}]


def test_echo_set_versus_append(lib: Lib, middleware_name: str) -> None:
    rec = get(build(lib, middleware_name, (lib.plugins.RequestIdPlugin(),)), "/app-header", {"X-Request-ID": UUID_HEX})
    values = header_values(rec, b"x-request-id")
    if middleware_name == "ContextMiddleware":
        assert values == [UUID_HEX.encode()]
    else:
        assert values == [b"from-app", UUID_HEX.encode()]


def test_exception_handler_sees_context(lib: Lib, middleware_name: str) -> None:
    app = build(lib, middleware_name, (lib.plugins.RequestIdPlugin(),))
    scope = http_scope("/boom", headers=[(b"x-request-id", UUID_HEX.encode())])
    from tests.helpers import Recorder

    rec = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(call_app(app, scope, send=rec))
    assert rec.status == 500
    assert json.loads(rec.body) == {"rid": UUID_HEX}


def test_non_plugin_refused(lib: Lib, middleware_name: str) -> None:
    cls = getattr(lib.middleware, middleware_name)
    with pytest.raises(lib.errors.ConfigurationError, match="is not a valid instance"):
        cls(make_app(lib, []), plugins=(object(),))


def test_context_outside_request(lib: Lib) -> None:
    with pytest.raises(lib.errors.ContextDoesNotExistError) as info:
        lib.context["x"]
    assert str(info.value) == (
        "You didn't use the required middleware or you're trying to access `context` object "
        "outside of the request-response cycle."
    )
    assert lib.context.exists() is False
    assert str(lib.context) == "{}"
    with pytest.raises(lib.errors.ConfigurationError, match="Can't instantiate with attributes"):
        type(lib.context)({"a": 1})


def test_request_cycle_context_and_dict_interface(lib: Lib) -> None:
    initial = {"a": 1}
    with lib.root.request_cycle_context(initial):
        ctx = lib.context
        ctx["b"] = 2
        assert initial == {"a": 1}
        assert ctx.exists() and ctx == {"a": 1, "b": 2} and len(ctx) == 2 and "a" in ctx
        assert sorted(ctx) == ["a", "b"] and list(ctx.keys()) == ["a", "b"] and list(ctx.values()) == [1, 2]
        assert list(ctx.items()) == [("a", 1), ("b", 2)] and ctx.get("z", 0) == 0
        assert ctx.copy() == {"a": 1, "b": 2} and type(ctx.copy()) is dict
        assert ctx.setdefault("c", 3) == 3 and ctx.pop("c") == 3 and ctx.pop("c", None) is None
        ctx.update({"d": 4}, e=5)
        del ctx["d"]
        assert ctx.data == {"a": 1, "b": 2, "e": 5} and str(ctx) == "{'a': 1, 'b': 2, 'e': 5}"
        assert repr(ctx).endswith("._Context {'a': 1, 'b': 2, 'e': 5}>")
        with pytest.raises(KeyError):
            ctx["missing"]
        ctx.clear()
        assert ctx == {} and not ctx
    assert not lib.context.exists()


def test_custom_plugin_hooks(lib: Lib, middleware_name: str) -> None:
    """A plugin overriding process_request and enrich_response in both styles."""
    from starlette.datastructures import MutableHeaders

    class Custom(lib.plugins.Plugin):  # type: ignore[name-defined,misc]
        key = "custom"

        async def process_request(self, request: Any) -> Any:
            return request.headers.get("x-custom", "none") + "!"

        async def enrich_response(self, arg: Any) -> None:
            value = str(lib.context.get(self.key))
            if isinstance(arg, Response):
                arg.headers["x-custom-out"] = value
            elif arg["type"] == "http.response.start":
                MutableHeaders(scope=arg).append("x-custom-out", value)

    plugins = (Custom(), lib.plugins.RequestIdPlugin())
    rec = get(build(lib, middleware_name, plugins), "/", {"X-Custom": "v", "X-Request-ID": UUID_HEX})
    assert json.loads(rec.body) == {"custom": "v!", "X-Request-ID": UUID_HEX}
    assert header_values(rec, b"x-custom-out") == [b"v!"]
    assert header_values(rec, b"x-request-id") == [UUID_HEX.encode()]


def test_set_context_override(lib: Lib, middleware_name: str) -> None:
    base = getattr(lib.middleware, middleware_name)

    class Mine(base):  # type: ignore[valid-type,misc]
        async def set_context(self, request: Any) -> dict[str, Any]:
            data = await super().set_context(request)
            data["path"] = request.url.path
            return data  # type: ignore[no-any-return]

    app = make_app(lib, [])
    app.user_middleware.insert(0, Middleware(Mine, plugins=(lib.plugins.UserAgentPlugin(),)))
    rec = get(app, "/", {"User-Agent": "ua"})
    assert json.loads(rec.body) == {"User-Agent": "ua", "path": "/"}


def test_raw_websocket_gets_context(lib: Lib) -> None:
    app = build(lib, "RawContextMiddleware", (lib.plugins.UserAgentPlugin(), lib.plugins.RequestIdPlugin()))
    rec = ws_connect(app, headers={"User-Agent": "ws", "X-Request-ID": UUID_HEX})
    text = next(m["text"] for m in rec.messages if m["type"] == "websocket.send")
    assert json.loads(text) == {"User-Agent": "ws", "X-Request-ID": UUID_HEX}
