"""Shared fixtures: the core-twin fixture and small in-process ASGI drivers."""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Callable, Coroutine, Iterable, Iterator
from types import ModuleType
from typing import Any, TypeVar

import pytest

import fastmw
from fastmw import _core_py
from fastmw._impl import TRUTHY, building_on
from fastmw.middleware._fusion import FusableMiddleware, bound_class
from fastmw.types import ASGIApp, Message, Receive, Scope

_core_c: ModuleType | None
try:
    from fastmw import _core
except ImportError:  # pragma: no cover - pure-only installs
    _core_c = None
else:
    _core_c = _core


T = TypeVar("T")

PURE_RUN = os.environ.get("FASTMW_NO_EXTENSIONS", "").strip().lower() in TRUTHY


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("FASTMW_REQUIRE_COMPILED") == "1" and not fastmw.COMPILED:
        raise pytest.UsageError("FASTMW_REQUIRE_COMPILED=1 but fastmw fell back to the pure-Python core")
    if PURE_RUN and fastmw.COMPILED:
        raise pytest.UsageError("FASTMW_NO_EXTENSIONS is set but fastmw loaded the compiled core")


def pytest_report_header(config: pytest.Config) -> str:
    return f"fastmw core: {'compiled' if fastmw.COMPILED else 'pure-Python'}"


# In the pure run only the pure twin is exercised; the compiled run covers both.
TWINS = [pytest.param(_core_py, id="pure")]
if _core_c is not None and not PURE_RUN:
    TWINS.insert(0, pytest.param(_core_c, id="compiled"))


@pytest.fixture(params=TWINS)
def core(request: pytest.FixtureRequest) -> ModuleType:
    """Each core twin in turn (only the pure one under FASTMW_NO_EXTENSIONS)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def twins() -> tuple[ModuleType, ModuleType]:
    """(compiled, pure), for differential tests; skipped when there is no compiled core."""
    if _core_c is None or PURE_RUN:
        pytest.skip("differential tests need the compiled core")
    return _core_c, _core_py


class Twin:
    """fastmw on one core twin, as multidict's tests get an implementation: every name is
    ``target``'s (``fastmw`` or one of its modules), except that middleware classes are
    bound to the twin's core, ``stack()`` builds on it and ``core``/``COMPILED`` are the
    twin's. Inside ``with twin:`` every middleware built runs on it. One package, one set of
    context variables: the middleware layer takes its core from ``fastmw._impl.layer_core``."""

    def __init__(self, core: ModuleType, target: ModuleType = fastmw) -> None:
        self.core = core
        self.COMPILED = core is _core_c
        self._target = target
        self._blocks: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if isinstance(value, type) and issubclass(value, FusableMiddleware):
            return bound_class(value, self.core)
        if isinstance(value, ModuleType) and value.__name__.startswith("fastmw."):
            return Twin(self.core, value)
        if value is fastmw.stack:
            return self._building(value)
        return value

    def _building(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            with building_on(self.core):
                return function(*args, **kwargs)

        return call

    def __enter__(self) -> Twin:
        block = building_on(self.core)
        block.__enter__()
        self._blocks.append(block)
        return self

    def __exit__(self, *exc: object) -> None:
        self._blocks.pop().__exit__(*exc)

    def __repr__(self) -> str:
        return f"<{self._target.__name__} on {self.core.__name__}>"


def twin_named(name: str) -> Twin:
    """fastmw on the "compiled" or "pure" twin (the pure one when there is no compiled core)."""
    return Twin(_core_c if name == "compiled" and _core_c is not None else _core_py)


@pytest.fixture(params=TWINS)
def layer(request: pytest.FixtureRequest) -> Iterator[Twin]:
    """fastmw on each core twin in turn, the middlewares the test builds running on it."""
    with Twin(request.param) as twin:
        yield twin


# --------------------------------------------------------------------------- ASGI drivers


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    headers: Iterable[tuple[bytes, bytes]] = (),
    query_string: bytes = b"",
    scope_type: str = "http",
    client: tuple[str, int] | None = ("127.0.0.1", 50000),
    **extra: Any,
) -> dict[str, Any]:
    """A minimal but complete ASGI http (or websocket) scope."""
    scope: dict[str, Any] = {
        "type": scope_type,
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http" if scope_type == "http" else "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query_string,
        "headers": list(headers),
        "client": client,
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    if scope_type == "websocket":
        del scope["method"]
        scope["subprotocols"] = []
    scope.update(extra)
    return scope


def feeder(messages: Iterable[Message], then: Message | None = None, *, suspend: bool = False) -> Receive:
    """A ``receive`` that yields ``messages`` and then ``then`` forever (blocks if None);
    with ``suspend``, each call first yields to the event loop (one more step to cancel at)."""
    queue = list(messages)

    async def receive() -> Message:
        if suspend:
            await asyncio.sleep(0)
        if queue:
            return queue.pop(0)
        if then is None:
            await asyncio.Event().wait()
        assert then is not None  # waits forever otherwise
        return dict(then)

    return receive


class Recorder:
    """A ``send`` that records every message (copies, so later mutation cannot hide)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.messages: list[Message] = []
        self.fail_on = fail_on

    async def __call__(self, message: Message) -> None:
        if self.fail_on is not None and message.get("type") == self.fail_on:
            raise OSError("client went away")
        self.messages.append(dict(message))

    @property
    def start(self) -> Message:
        starts = [m for m in self.messages if m["type"] in ("http.response.start", "websocket.http.response.start")]
        assert len(starts) == 1, f"expected one response start, got {len(starts)}"
        return starts[0]

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.start.get("headers", []))

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


async def call_app(
    app: ASGIApp,
    scope: Scope,
    receive_messages: Iterable[Message] = ({"type": "http.request", "body": b"", "more_body": False},),
    *,
    then: Message | None = {"type": "http.disconnect"},  # noqa: B006 - read-only default
    send: Recorder | None = None,
) -> Recorder:
    """Drive ``app`` once and return the recorded sent messages."""
    recorder = send if send is not None else Recorder()
    await app(scope, feeder(receive_messages, then), recorder)
    return recorder


def asyncio_sees_a_coroutine_function(func: Any) -> bool:
    """``asyncio.iscoroutinefunction(func)``, as servers before inspect's check asked it
    (uvicorn up to 0.3x); deprecated since CPython 3.14, but still what those servers run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.iscoroutinefunction(func)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh event loop (tests stay sync and plain)."""
    return asyncio.run(coro)


async def plain_app(scope: Scope, receive: Any, send: Any) -> None:
    """A tiny raw ASGI app: 200, text/plain, body 'ok' (http) or accept+close (websocket)."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


# --------------------------------------------------------------------------- hypothesis profiles

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", max_examples=200, deadline=None)
# The dedicated hostile-input run: FASTMW_HYPOTHESIS_PROFILE=deep.
settings.register_profile("deep", max_examples=100_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("FASTMW_HYPOTHESIS_PROFILE", "default"))
