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
