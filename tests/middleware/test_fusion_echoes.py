"""Fusion and what is echoed: refusals, a shared error response and a ``None`` request id
give the same headers alone, wrapped and fused."""

from __future__ import annotations

import contextvars
from typing import Any

import pytest
from starlette.responses import Response

from tests.middleware._fusion_harness import (
    FIXED_ID,
    build,
    drive,
    fuse_flag,
    fused_stages,
    make_app,
    request_scope,
    server_for,
)


def test_a_shared_error_response_is_never_edited(mw: Any) -> None:
    # One Response answers every refused request: the start steps edit a copy of its headers.
    refusal = Response("bad", status_code=400, headers={"x-app": "1"})
    before = list(refusal.raw_headers)
    plugins = [mw.plugins.RequestIdPlugin(), mw.plugins.CorrelationIdPlugin()]
    context = mw.RawContextMiddleware(make_app("ok", [], mw), plugins=plugins, default_error_response=refusal)
    app = mw.RequestIdMiddleware(mw.TimingMiddleware(context))
    for index in range(3):
        scope = request_scope("bad_cid")
        scope["headers"][1] = (b"x-request-id", b"%032x" % index)
        server = server_for("bad_cid")
        contextvars.Context().run(drive, app(scope, server.receive, server.send))
        start = server.sent[0]
        assert start["status"] == 400
        # The outer stages' headers only: the refusing context stage echoes nothing.
        names = [name for name, _ in start["headers"]]
        assert names == [*(name for name, _ in before), b"x-process-time", b"server-timing", b"x-request-id"]
        assert dict(start["headers"])[b"x-request-id"] == b"%032x" % index
    assert refusal.raw_headers == before


# --------------------------------------------------------------------------- a None request id


def none_id_plugins(mw: Any) -> dict[str, Any]:
    """RequestIdPlugin subclasses whose value is None when no id is sent."""

    class NoneFromHooks(mw.plugins.RequestIdPlugin):  # type: ignore[misc]
        # Served by the core stage (a reader calling the overridden hooks).
        def get_new_uuid(self) -> Any:
            return None

        def validate_uuid(self, uuid_to_validate: Any) -> None:
            return None

    class NoneFromRequest(mw.plugins.RequestIdPlugin):  # type: ignore[misc]
        # Served by the Python layer (an awaited process_request).
        async def process_request(self, request: Any) -> Any:
            return None

    return {"hooks": NoneFromHooks, "process_request": NoneFromRequest}


def none_echo_case(mw: Any, plugin: str, middleware: str, wrapped: bool) -> tuple[Any, ...]:
    seen: list[Any] = []
    context_class = getattr(mw, middleware)
    app = context_class(make_app("ok", seen, mw), plugins=[none_id_plugins(mw)[plugin]()])
    if wrapped:
        app = mw.TimingMiddleware(app)
    scope = request_scope("ok")
    scope["headers"] = [(b"user-agent", b"ua")]
    server = server_for("ok")
    contextvars.Context().run(drive, app(scope, server.receive, server.send))
    echoed = [value for name, value in server.sent[0]["headers"] if name == b"x-request-id"]
    return echoed, seen[-1]["context"], len(fused_stages(mw, app))


@pytest.mark.parametrize("middleware", ["RawContextMiddleware", "ContextMiddleware"])
def test_a_none_request_id_echoes_no_header_alone_and_fused(mw: Any, middleware: str) -> None:
    alone = none_echo_case(mw, "hooks", middleware, wrapped=False)
    fused = none_echo_case(mw, "hooks", middleware, wrapped=True)
    assert alone == ([], {"X-Request-ID": None}, 1)
    assert fused == ([], {"X-Request-ID": None}, 2 if fuse_flag(mw) else 1)


@pytest.mark.parametrize("middleware", ["RawContextMiddleware", "ContextMiddleware"])
def test_a_none_request_id_from_an_awaited_hook_echoes_alike_alone_and_wrapped(mw: Any, middleware: str) -> None:
    # The awaited-hooks layer (in front of its own stage, no fusion) behaves the same whatever wraps it.
    alone = none_echo_case(mw, "process_request", middleware, wrapped=False)
    wrapped = none_echo_case(mw, "process_request", middleware, wrapped=True)
    assert alone[:2] == wrapped[:2]
    assert alone[1] == {"X-Request-ID": None}
    assert (alone[2], wrapped[2]) == (0, 1)


@pytest.mark.parametrize("middleware", ["RawContextMiddleware", "ContextMiddleware"])
def test_a_none_request_id_from_an_awaited_hook_echoes_no_header(mw: Any, middleware: str) -> None:
    assert none_echo_case(mw, "process_request", middleware, wrapped=False)[0] == []


def test_a_refusal_echoes_an_id_from_the_generator(mw: Any) -> None:
    app = build(("request_id_reject",), make_app("ok", [], mw), True, "bad_id", None, [], mw)
    server = server_for("bad_id")
    contextvars.Context().run(drive, app(request_scope("bad_id"), server.receive, server.send))
    assert server.sent[0]["status"] == 400
    assert dict(server.sent[0]["headers"])[b"x-request-id"] == FIXED_ID.encode()
