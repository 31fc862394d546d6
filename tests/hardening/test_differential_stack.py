"""Differential: the same hostile scope through the full stack built on the compiled core
and on the pure core (one package, the ``Twin`` of ``tests/conftest.py``) must give the same outcome (messages sent,
exception type and message, access-log records, what the app saw)."""

from __future__ import annotations

import asyncio
import io
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastmw
from fastmw.types import Scope
from tests.conftest import PURE_RUN, twin_named
from tests.hardening._faults import listed_logger
from tests.hardening._stack import full_stack

pytestmark = pytest.mark.skipif(PURE_RUN or not fastmw.COMPILED, reason="differential tests need the compiled core")

NAMES = st.sampled_from(
    [b"x-request-id", b"X-Request-ID", b"x-correlation-id", b"X-CORRELATION-ID", b"user-agent", b"host", b""]
)
UUIDISH = st.sampled_from(
    [
        b"5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6d",
        b"{5b2a7f3c-9e1d-4a6b-8c0d-1e2f3a4b5c6d}",
        b"  5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6d\r\n",
    ]
)
VALUES = st.one_of(st.binary(max_size=40), UUIDISH, st.sampled_from([b"abc\r\nSet-Cookie: x=1", b"\x00", b"\xff\xfe"]))
ENTRY = st.one_of(
    st.tuples(st.one_of(NAMES, st.binary(max_size=8)), VALUES),
    st.tuples(st.one_of(NAMES, st.binary(max_size=8)), VALUES),
    st.lists(st.one_of(NAMES, VALUES), min_size=2, max_size=2),
    st.tuples(NAMES, st.one_of(st.text(max_size=4), st.integers(), st.none())),
    st.tuples(st.text(max_size=4), VALUES),
    st.tuples(NAMES),
    st.none(),
)
HEADERS = st.lists(ENTRY, max_size=10)
CONTAINER = st.sampled_from(["list", "tuple", "none", "missing"])
DROPPED = st.sets(st.sampled_from(["path", "method", "query_string", "client", "http_version", "scheme", "raw_path"]))
KIND = st.sampled_from(["http", "websocket"])
# Generated ids and timings differ run to run; everything else must match exactly.
GENERATED = re.compile(rb"[0-9a-f]{32}")
TIMED = re.compile(rb"\d+\.\d+")


def normalise(value: Any, known: set[bytes]) -> str:
    text = repr(value).encode("utf-8", "backslashreplace")
    text = GENERATED.sub(lambda m: m.group(0) if m.group(0) in known else b"<id>", text)
    return TIMED.sub(b"<t>", text).decode()


async def run_scope(mw: Any, scope: Scope) -> list[Any]:
    logger, handler = listed_logger(f"fastmw.hardening.diff.{mw.COMPILED}")
    records = handler.records
    stream = io.BytesIO()

    async def app(inner: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        seen = [mw.correlation_id.get(), mw.context.copy() if mw.context.exists() else None]
        if inner["type"] == "websocket":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(seen, default=repr)})
            await send({"type": "websocket.close", "code": 1000})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": json.dumps(seen, default=repr).encode()})

    stacked, sink = full_stack(app, logger=logger, sink_stream=stream, batch_lines=1, mw=mw)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    first = {"type": "websocket.connect"} if scope["type"] == "websocket" else {"type": "http.request", "body": b""}
    queue = [first]

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    error: Any = None
    try:
        await stacked(scope, receive, send)
    except Exception as exc:  # compared, not judged
        error = (type(exc).__name__, str(exc))
    sink.flush()
    lines = [
        {k: v for k, v in json.loads(line).items() if k not in ("time", "duration_ms", "ttfb_ms")}
        for line in stream.getvalue().splitlines()
    ]
    logged = [
        (record.getMessage(), getattr(record, "status", None), getattr(record, "request_id", None))
        for record in records
    ]
    return [sent, error, lines, logged]


def build_scope(kind: str, headers: list[Any], container: str, dropped: set[str]) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/d",
        "raw_path": b"/d",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    if container == "list":
        scope["headers"] = list(headers)
    elif container == "tuple":
        scope["headers"] = tuple(headers)
    elif container == "none":
        scope["headers"] = None
    for key in dropped:
        scope.pop(key, None)
    return scope


@given(kind=KIND, headers=HEADERS, container=CONTAINER, dropped=DROPPED)
def test_full_stack_compiled_and_pure_agree(kind: str, headers: list[Any], container: str, dropped: set[str]) -> None:
    known = {
        value for entry in headers if isinstance(entry, (tuple, list)) for value in entry if isinstance(value, bytes)
    }
    outcomes = []
    for mw in (twin_named("compiled"), twin_named("pure")):
        outcome = asyncio.run(run_scope(mw, build_scope(kind, headers, container, dropped)))
        outcomes.append(normalise(outcome, known))
    assert outcomes[0] == outcomes[1]


def test_huge_and_duplicate_header_lists_agree() -> None:
    known: set[bytes] = set()
    many = [(b"X-Request-ID" if n % 2 else b"x-request-id", b"%032x" % n) for n in range(20_000)]
    for headers in ([], many, [(b"x-a", b"v" * 1_000_000)], [(b"x-request-id", b"")] * 3):
        known |= {value for _, value in headers}
        outcomes = [
            normalise(asyncio.run(run_scope(mw, build_scope("http", headers, "list", set()))), known)
            for mw in (twin_named("compiled"), twin_named("pure"))
        ]
        assert outcomes[0] == outcomes[1]
