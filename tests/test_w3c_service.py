"""tests/w3c_service.py, the W3C validation harness's service, driven in-process (callbacks captured)."""

from __future__ import annotations

import json
import re

import httpx

from tests.helpers import call_app, http_scope, run
from tests.w3c_service import build

TRACE = "12345678901234567890123456789012"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def serve(headers: list[tuple[bytes, bytes]], count: int) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def harness(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=None)

    calls = [{"url": f"http://127.0.0.1:7777/scope.{index}", "arguments": []} for index in range(count)]
    body = {"type": "http.request", "body": json.dumps(calls).encode(), "more_body": False}
    sent = run(
        call_app(build(httpx.MockTransport(harness)), http_scope("/test", method="POST", headers=headers), [body])
    )
    assert sent.status == 200 and sent.body == b"[]"
    return seen


def test_callbacks_continue_the_trace_with_new_parent_ids() -> None:
    headers = [
        (b"traceparent", f"00-{TRACE}-1234567890123456-02".encode()),
        (b"tracestate", b"foo=1"),
        (b"tracestate", b"bar=2"),
    ]
    seen = serve(headers, 3)
    matches = [TRACEPARENT.fullmatch(request.headers["traceparent"]) for request in seen]
    assert all(match and match.group(1) == TRACE and match.group(3) == "02" for match in matches)
    assert len({match.group(2) for match in matches if match}) == 3
    assert {request.headers["tracestate"] for request in seen} == {"foo=1,bar=2"}
    assert [str(request.url) for request in seen] == [f"http://127.0.0.1:7777/scope.{index}" for index in range(3)]


def test_an_invalid_traceparent_restarts_the_trace() -> None:
    seen = serve([(b"traceparent", b"ff-" + TRACE.encode() + b"-1234567890123456-01"), (b"tracestate", b"foo=1")], 1)
    match = TRACEPARENT.fullmatch(seen[0].headers["traceparent"])
    assert match and match.group(1) != TRACE and "tracestate" not in seen[0].headers
