"""Leak script: runs every core operation many times in one process and reports RSS
growth after warm-up plus the reference counts of probe objects before and after.

Usage: python -m tests.leak_scripts.core_ops <compiled|pure> <iterations>
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

from tests.leak_scripts._measure import report, rss_kib

TWIN, ITERATIONS = sys.argv[1], int(sys.argv[2])
if TWIN == "compiled":
    from fastmw import _core as core
else:
    from fastmw import _core_py as core

NAME = b"x-request-id"
VALUE = b"5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6d"
HEADERS = [(b"host", b"example.com"), (b"user-agent", b"probe"), (NAME, VALUE)]
CONTEXT: dict[str, Any] = {"probe": 1}
PROBES = {"name": NAME, "value": VALUE, "headers": HEADERS, "context": CONTEXT}


async def downstream(message: Any) -> None:
    return None


def one_round(loop: asyncio.AbstractEventLoop) -> None:
    core.header_get(HEADERS, NAME)
    core.header_get(HEADERS, "User-Agent")
    core.header_getlist(HEADERS, NAME)
    core.header_contains(HEADERS, b"missing")
    work = list(HEADERS)
    core.header_set(work, "X-Request-ID", VALUE)
    core.header_append(work, "set-cookie", "a=1")
    core.header_setdefault(work, "x-a", "1")
    core.add_vary_header(work, "Origin")
    core.header_delete(work, "set-cookie")
    core.header_items(work)
    try:
        core.header_set(work, "x-bad", "a\r\nb")
    except ValueError:
        pass
    try:
        core.header_get([(1, 2)], NAME)
    except TypeError:
        pass
    view = core.MutableHeaders(raw=work)
    view["x-b"] = "2"
    _ = view.get("x-b")
    recorder = core.SendRecorder(downstream)
    recorder.add_header(NAME, VALUE)
    coro = recorder({"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]})
    coro.close()
    coro = recorder({"type": "http.response.body", "body": b"ok"})
    coro.close()
    try:
        recorder({"type": "http.response.start", "status": 200})
    except RuntimeError:
        pass
    token = core.context_set(CONTEXT)
    proxy = core._Context()
    _ = proxy["probe"], proxy.get("x"), "probe" in proxy, len(proxy), repr(proxy)
    core.context_reset(token)
    try:
        core.context_get()
    except RuntimeError:
        pass
    core.new_request_id()
    core.is_uuid4(VALUE.decode())
    core.is_uuid("{" + VALUE.decode() + "}")


def main() -> None:
    loop = asyncio.new_event_loop()
    context = contextvars.copy_context()
    for _ in range(max(ITERATIONS // 10, 1000)):  # warm-up: caches, free lists, arenas
        context.run(one_round, loop)
    before_refs = {key: sys.getrefcount(value) for key, value in PROBES.items()}
    before_rss = rss_kib()
    for _ in range(ITERATIONS):
        context.run(one_round, loop)
    after_rss = rss_kib()
    after_refs = {key: sys.getrefcount(value) for key, value in PROBES.items()}
    loop.close()
    report(
        twin=TWIN,
        iterations=ITERATIONS,
        rss_growth_kib=after_rss - before_rss,
        ref_deltas={key: after_refs[key] - before_refs[key] for key in PROBES},
    )


if __name__ == "__main__":
    main()
