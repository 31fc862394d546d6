"""One fused stack shared by several threads, each running its own event loop (as granian
or a free-threaded server does): every request keeps its own context and gets ids no other
request got, whichever core runs and whether or not the interpreter has a GIL."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from typing import Any

import fastmw
from fastmw import trace
from tests.helpers import Recorder, call_app, http_scope

THREADS = 6
REQUESTS = 150  # per thread
# Client-sent ids on every third request: they must come back unchanged, to that request only.
SENT_EVERY = 3


def echo_context_app() -> Callable[..., Any]:
    """An app that reads the request's id and trace id, yields to the loop (and so to the
    other requests on it) several times, reads them again and sends both readings back."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen = []
        for _ in range(4):
            current = trace.current()
            seen.append(f"{fastmw.correlation_id.get()}/{current.trace_id if current else None}")
            await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": " ".join(seen).encode()})

    return app


async def serve(app: Any, worker: int) -> list[tuple[str, bytes | None, Recorder]]:
    """REQUESTS requests, all concurrently on this thread's loop."""

    async def one(i: int) -> tuple[str, bytes | None, Recorder]:
        sent = f"thread{worker}-request{i}-{'x' * 8}".encode() if i % SENT_EVERY == 0 else None
        headers = [(b"x-request-id", sent)] if sent is not None else []
        recorder = await call_app(app, http_scope(f"/{worker}/{i}", headers=headers))
        return f"{worker}/{i}", sent, recorder

    return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


def test_threads_with_their_own_loops_share_one_stack() -> None:
    app = fastmw.stack(echo_context_app(), trace_context=True, access_log=False)
    results: dict[int, list[tuple[str, bytes | None, Recorder]]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)
    # A short switch interval makes the GIL change hands often, mid-request.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)

    def worker(n: int) -> None:
        try:
            start.wait()
            results[n] = asyncio.run(serve(app, n))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    assert all(not thread.is_alive() for thread in threads)

    request_ids: list[bytes] = []
    trace_ids: list[str] = []
    for n in range(THREADS):
        assert len(results[n]) == REQUESTS
        for label, sent, recorder in results[n]:
            assert recorder.status == 200, label
            request_id = recorder.header(b"x-request-id")
            assert request_id is not None, label
            traceparent = recorder.header(b"traceparent") or recorder.header(b"traceresponse")
            readings = set(recorder.body.decode().split(" "))
            # The same id and trace id at every reading: no other request's context leaked in.
            assert len(readings) == 1, (label, readings)
            (reading,) = readings
            seen_id, seen_trace = reading.split("/")
            assert seen_id == request_id.decode(), label
            if sent is not None:
                assert request_id == sent, label
            else:
                request_ids.append(request_id)
            assert seen_trace != "None", label
            trace_ids.append(seen_trace)
            if traceparent is not None:
                assert traceparent.decode().split("-")[1] == seen_trace, label
    generated = THREADS * REQUESTS - len(range(0, REQUESTS, SENT_EVERY)) * THREADS
    assert len(request_ids) == generated
    assert len(set(request_ids)) == len(request_ids), "a generated request id was handed out twice"
    assert len(set(trace_ids)) == len(trace_ids), "a generated trace id was handed out twice"
