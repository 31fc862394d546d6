"""One request id per request, whoever reads it.

Every placement of the request-id middlewares and the request-id plugin (inside,
outside, fused or not, both context middlewares) must give one id: the same in
``fastmw.correlation_id``, the context, the logging filter, the access record and
the response header, which is echoed exactly once.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest

import fastmw
from fastmw import ContextMiddleware, CorrelationIdMiddleware, RawContextMiddleware, RequestIdMiddleware
from fastmw.logging import CorrelationIdFilter
from fastmw.plugins import RequestIdPlugin
from fastmw.types import Scope
from tests.conftest import call_app, http_scope, run

Wrap = Callable[[Any], Any]
ID = "4f1c2b3a9d8e4f708192a3b4c5d6e7f8"
NGINX_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


class Seen:
    """What the endpoint saw of the request id, through every public way to read it."""

    def __init__(self) -> None:
        self.values: list[tuple[Any, Any, Any]] = []
        self.filter = CorrelationIdFilter()

    async def app(self, scope: Scope, receive: Any, send: Any) -> None:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
        self.filter.filter(record)
        in_context = fastmw.context.get("X-Request-ID") if fastmw.context.exists() else None
        self.values.append((fastmw.correlation_id.get(), in_context, vars(record)["correlation_id"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _request_id(fuse: bool) -> Wrap:
    return lambda app: RequestIdMiddleware(app, fuse=fuse)


def _correlation_id(fuse: bool) -> Wrap:
    return lambda app: CorrelationIdMiddleware(app, fuse=fuse)


def _context(cls: type[Any], fuse: bool) -> Wrap:
    return lambda app: cls(app, plugins=(RequestIdPlugin(),), fuse=fuse)


def _stack(fuse: bool) -> Wrap:
    return lambda app: fastmw.stack(app, access_log={"fuse": fuse}, request_id={"fuse": fuse})


ID_LAYERS = {"request_id": _request_id, "correlation_id": _correlation_id, "stack": _stack}
CONTEXT_LAYERS = {"raw_context": RawContextMiddleware, "context": ContextMiddleware}
PLACEMENTS = [
    pytest.param(id_layer, context, outer, fuse, id=f"{id_layer}-{context}-{outer}-{'fused' if fuse else 'layers'}")
    for id_layer, context, outer, fuse in itertools.product(ID_LAYERS, CONTEXT_LAYERS, ("id", "context"), (True, False))
]


@pytest.mark.parametrize(("id_layer", "context", "outer", "fuse"), PLACEMENTS)
@pytest.mark.parametrize("incoming", [None, ID, NGINX_ID], ids=["absent", "uuid", "nginx"])
def test_every_placement_has_one_id(
    id_layer: str, context: str, outer: str, fuse: bool, incoming: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    id_wrap = ID_LAYERS[id_layer](fuse)
    context_wrap = _context(CONTEXT_LAYERS[context], fuse)
    if outer == "id":
        app = id_wrap(context_wrap(seen.app))
    else:
        app = context_wrap(id_wrap(seen.app))
    headers = [(b"x-request-id", incoming.encode())] if incoming else []
    with caplog.at_level(logging.INFO, logger="fastmw.access"):
        sent = run(call_app(app, http_scope(headers=headers)))
    echoed = [value for name, value in sent.headers if name.lower() == b"x-request-id"]
    assert len(echoed) == 1, f"echoed {echoed}"
    (request_id,) = {value.decode() for value in echoed}
    if incoming is not None:
        assert request_id == incoming
    assert seen.values == [(request_id, request_id, request_id)]
    access = [record for record in caplog.records if record.name == "fastmw.access"]
    if id_layer == "stack":
        assert [record.request_id for record in access] == [request_id]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "incoming",
    [
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9",  # nginx $request_id
        "018f6d7e-8c9b-7a6d-9e8f-0a1b2c3d4e5f",  # UUIDv7
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",  # UUIDv1
        "Root=1-5759e988-bd862e3fe1be46a994272793",  # AWS X-Amzn-Trace-Id
        "c1a5d2e3-4b6f-4a8e-9c0d-1e2f3a4b5c6d",  # Heroku (a UUID)
        "8f2a1b3c4d5e6f70-AMS",  # Cloudflare Ray id
        "a" * 128,
    ],
)
def test_ids_from_real_infrastructure_are_kept(incoming: str, caplog: pytest.LogCaptureFixture) -> None:
    seen = Seen()
    with caplog.at_level(logging.WARNING, logger="fastmw.request_id"):
        sent = run(call_app(fastmw.stack(seen.app), http_scope(headers=[(b"x-request-id", incoming.encode())])))
    assert sent.header(b"x-request-id") == incoming.encode()
    assert seen.values[0][0] == incoming
    assert caplog.records == []


@pytest.mark.parametrize("bad", [b"a" * 129, b"has space", b"semi;colon", b"caf\xc3\xa9", b"x\r\nset-cookie: a=b"])
def test_unsafe_ids_are_replaced_and_reported_once_a_minute(bad: bytes, caplog: pytest.LogCaptureFixture) -> None:
    seen = Seen()
    app = RequestIdMiddleware(seen.app)
    with caplog.at_level(logging.WARNING, logger="fastmw.request_id"):
        for _ in range(5):
            sent = run(call_app(app, http_scope(headers=[(b"x-request-id", bad)])))
            assert sent.header(b"x-request-id") != bad
            assert fastmw.is_uuid(sent.header(b"x-request-id").decode())  # type: ignore[union-attr]
    assert len([r for r in caplog.records if r.name == "fastmw.request_id"]) == 1


def test_uuid_validation_is_opt_in() -> None:
    seen = Seen()
    app = RequestIdMiddleware(seen.app, validator=fastmw.is_uuid)
    sent = run(call_app(app, http_scope(headers=[(b"x-request-id", NGINX_ID.encode())])))
    assert sent.header(b"x-request-id") == NGINX_ID.encode()  # 32 hex digits parse as a UUID
    sent = run(call_app(app, http_scope(headers=[(b"x-request-id", b"Root=1-abc")])))
    assert sent.header(b"x-request-id") != b"Root=1-abc"


def test_correlation_id_middleware_logs_every_replacement_like_asgi_correlation_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = CorrelationIdMiddleware(Seen().app)
    with caplog.at_level(logging.WARNING, logger="asgi_correlation_id"):
        for _ in range(3):
            run(call_app(app, http_scope(headers=[(b"x-request-id", b"not-a-uuid")])))
    # On asgi-correlation-id's logger, so existing logging configurations keep working.
    assert len([r for r in caplog.records if r.name == "asgi_correlation_id"]) == 3
