"""fastmw.logging: ContextFilter, the structlog processor and CorrelationIdFilter."""

from __future__ import annotations

import logging
from typing import Any

from fastmw._storage import CORRELATION_ID, REQUEST_CONTEXT
from fastmw.logging import ContextFilter, StructlogContextProcessor


def record() -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, "msg", None, None)


def test_outside_a_request_sets_defaults() -> None:
    rec = record()
    assert ContextFilter(keys=["X-Request-ID", "user"], default="-").filter(rec)
    assert (rec.request_id, rec.x_request_id, rec.user) == ("-", "-", "-")  # type: ignore[attr-defined]
    assert StructlogContextProcessor(keys={"user": "uid"})(None, "info", {"event": "e"}) == {
        "event": "e",
        "request_id": None,
        "uid": None,
    }


def test_inside_a_request_reads_id_and_context() -> None:
    rid = CORRELATION_ID.set("abc")
    ctx = REQUEST_CONTEXT.set({"user": 7})
    try:
        rec = record()
        ContextFilter(keys={"user": "user_id", "missing": "m"}).filter(rec)
        assert (rec.request_id, rec.user_id, rec.m) == ("abc", 7, "-")  # type: ignore[attr-defined]
        event: dict[str, Any] = {"event": "e", "user": "explicit"}
        out = StructlogContextProcessor(keys=["user"])(None, "info", event)
        assert out == {"event": "e", "user": "explicit", "request_id": "abc"}  # existing keys win
    finally:
        REQUEST_CONTEXT.reset(ctx)
        CORRELATION_ID.reset(rid)


def test_never_raises_on_a_broken_context() -> None:
    ctx = REQUEST_CONTEXT.set("not a dict")  # type: ignore[arg-type]
    try:
        rec = record()
        assert ContextFilter(keys=["a"]).filter(rec)
        assert StructlogContextProcessor(keys=["a"])(None, "info", {}) is not None
    finally:
        REQUEST_CONTEXT.reset(ctx)


def test_works_through_a_real_handler() -> None:
    logger = logging.getLogger("fastmw.test.ctxfilter")
    stream: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            stream.append(self.format(rec))

    handler = ListHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        token = CORRELATION_ID.set("r1")
        logger.info("inside")
        CORRELATION_ID.reset(token)
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    assert stream == ["[r1] inside", "[-] outside"]


def test_documented_dict_config_example() -> None:
    import logging.config

    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": "fastmw.logging.ContextFilter", "keys": ["user_id"], "default": "-"}},
        "handlers": {"null": {"class": "logging.NullHandler", "filters": ["request"]}},
        "loggers": {"fastmw.test.dictconfig": {"handlers": ["null"], "level": "INFO", "propagate": False}},
    }
    logging.config.dictConfig(config)
    handler = logging.getLogger("fastmw.test.dictconfig").handlers[0]
    rec = record()
    assert handler.filter(rec) and (rec.request_id, rec.user_id) == ("-", "-")  # type: ignore[attr-defined]
    logging.getLogger("fastmw.test.dictconfig").handlers.clear()


# --------------------------------------------------------------------------- asgi-correlation-id's filters


def test_celery_tracing_ids_filter_matches_asgi_correlation_id() -> None:
    from fastmw import CeleryTracingIdsFilter, celery_current_id, celery_parent_id

    filt = CeleryTracingIdsFilter(uuid_length=8, default_value="-")
    assert (filt.name, filt.uuid_length, filt.default_value) == ("", 8, "-")
    rec = record()
    assert filt.filter(rec)
    assert (rec.celery_parent_id, rec.celery_current_id) == ("-", "-")  # type: ignore[attr-defined]
    assert CeleryTracingIdsFilter().filter(rec)
    assert (rec.celery_parent_id, rec.celery_current_id) == (None, None)  # type: ignore[attr-defined]
    parent, current = "a" * 36, "b" * 36
    tokens = celery_parent_id.set(parent), celery_current_id.set(current)
    try:
        for length, expected in [(6, 6), (16, 16), (None, 36), (38, 36), (0, 0)]:
            rec = record()
            CeleryTracingIdsFilter(uuid_length=length).filter(rec)
            assert rec.celery_parent_id == parent[:expected]  # type: ignore[attr-defined]
            assert rec.celery_current_id == current[:expected]  # type: ignore[attr-defined]
        celery_current_id.set("")  # empty ids pass unchanged, never replaced by the default
        rec = record()
        CeleryTracingIdsFilter(uuid_length=4, default_value="-").filter(rec)
        assert (rec.celery_parent_id, rec.celery_current_id) == ("aaaa", "")  # type: ignore[attr-defined]
    finally:
        celery_current_id.reset(tokens[1])
        celery_parent_id.reset(tokens[0])


def test_celery_ids_are_asgi_correlation_id_style_context_vars() -> None:
    import fastmw
    from fastmw import _storage

    assert fastmw.celery_parent_id is _storage.CELERY_PARENT_ID
    assert fastmw.celery_current_id is _storage.CELERY_CURRENT_ID
    assert (fastmw.celery_parent_id.name, fastmw.celery_current_id.name) == ("celery_parent", "celery_current")
    assert fastmw.celery_parent_id.get() is None and fastmw.celery_current_id.get() is None


def test_correlation_id_filter_equals_asgi_correlation_id_s() -> None:
    from asgi_correlation_id import CorrelationIdFilter as Theirs
    from asgi_correlation_id import correlation_id as their_id

    from fastmw import CorrelationIdFilter

    for value in (None, "", "0123456789abcdef", "x" * 40):
        for length in (None, 0, 8, 100):
            for default in (None, "-"):
                ours, theirs = record(), record()
                token, their_token = CORRELATION_ID.set(value), their_id.set(value)
                try:
                    CorrelationIdFilter(uuid_length=length, default_value=default).filter(ours)
                    Theirs(uuid_length=length, default_value=default).filter(theirs)
                finally:
                    CORRELATION_ID.reset(token)
                    their_id.reset(their_token)
                assert ours.correlation_id == theirs.correlation_id  # type: ignore[attr-defined]


def test_asgi_correlation_id_readme_dict_config_with_fastmw_names() -> None:
    """asgi-correlation-id's documented Celery logging config, only the module names changed."""
    import logging.config

    lines: list[str] = []

    class ListHandler(logging.StreamHandler):  # type: ignore[type-arg]
        def emit(self, rec: logging.LogRecord) -> None:
            lines.append(self.format(rec))

    name = "fastmw.test.acid_dictconfig"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {
                "correlation_id": {"()": "fastmw.CorrelationIdFilter", "uuid_length": 32},
                "celery_tracing": {"()": "fastmw.CeleryTracingIdsFilter", "uuid_length": 32},
            },
            "formatters": {
                "celery": {
                    "class": "logging.Formatter",
                    "format": "%(levelname)s [%(correlation_id)s] "
                    "[%(celery_parent_id)s-%(celery_current_id)s] %(message)s",
                },
            },
            "handlers": {
                "celery": {
                    "()": ListHandler,
                    "filters": ["correlation_id", "celery_tracing"],
                    "formatter": "celery",
                },
            },
            "loggers": {name: {"handlers": ["celery"], "level": "DEBUG", "propagate": False}},
        }
    )
    from fastmw import celery_current_id, celery_parent_id

    logger = logging.getLogger(name)
    try:
        logger.info("outside")
        tokens = CORRELATION_ID.set("c" * 40), celery_parent_id.set("p" * 32), celery_current_id.set("q" * 32)
        try:
            logger.info("inside")
        finally:
            celery_current_id.reset(tokens[2])
            celery_parent_id.reset(tokens[1])
            CORRELATION_ID.reset(tokens[0])
    finally:
        logger.handlers.clear()
    assert lines == ["INFO [None] [None-None] outside", f"INFO [{'c' * 32}] [{'p' * 32}-{'q' * 32}] inside"]


UVICORN_RECIPE = """
import copy
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.config import LOGGING_CONFIG

import fastmw

app = fastmw.CorrelationIdMiddleware(Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))]))

# The recipe in docs/correlation-id.md, verbatim.
log_config = copy.deepcopy(LOGGING_CONFIG)
log_config["filters"] = {"correlation_id": {"()": "fastmw.CorrelationIdFilter", "default_value": "-"}}
log_config["handlers"]["access"]["filters"] = ["correlation_id"]
log_config["formatters"]["access"]["fmt"] = (
    '%(levelprefix)s [%(correlation_id)s] %(client_addr)s - "%(request_line)s" %(status_code)s'
)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=log_config)
"""


def test_uvicorn_access_log_recipe(tmp_path: Any) -> None:
    """The uvicorn recipe in docs/correlation-id.md: every access line carries the request's id."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log_path = tmp_path / "uvicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", UVICORN_RECIPE, str(port)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    given = "0123456789abcdef0123456789abcdef"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                echoed = httpx.get(base, headers={"X-Request-ID": given}, timeout=1.0).headers["x-request-id"]
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        made = httpx.get(base, timeout=5.0).headers["x-request-id"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    access = [line for line in log_path.read_text().splitlines() if '"GET / HTTP/1.1" 200' in line]
    assert echoed == given
    assert [line.split()[1] for line in access] == [f"[{given}]", f"[{made}]"], access
