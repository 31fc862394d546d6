"""Fixtures for the Celery and Sentry tests: a recording log handler and an in-memory Sentry."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from fastmw import CeleryTracingIdsFilter, CorrelationIdFilter

LOGGER = "tests.extensions"
# Where ``tests`` is importable from: the checkout, or the copy a wheel test runs in.
TESTS_PARENT = Path(__file__).resolve().parents[2]
# Never contacted: the transport below keeps every envelope in memory.
DSN = "http://public@127.0.0.1:9/1"


class RecordingHandler(logging.Handler):
    """Keeps each record it handles, after its filters ran (from any thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[logging.LogRecord]:
        """The records once there are ``count`` of them (fails after ``timeout`` seconds)."""
        with self._changed:
            done = self._changed.wait_for(lambda: len(self.records) >= count, timeout)
        assert done, f"expected {count} log records, got {len(self.records)}"
        return list(self.records)


@pytest.fixture
def log_records() -> Iterator[RecordingHandler]:
    """Records of the ``tests.extensions`` logger, through both asgi-correlation-id filters."""
    handler = RecordingHandler()
    handler.addFilter(CorrelationIdFilter())
    handler.addFilter(CeleryTracingIdsFilter())
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


class MemoryTransport(Transport):
    """A real sentry-sdk transport that keeps events instead of sending them."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(dict(event))


@pytest.fixture
def sentry_events() -> Iterator[list[dict[str, Any]]]:
    """sentry-sdk initialised (no integrations) with a MemoryTransport; its events."""
    transport = MemoryTransport()
    sentry_sdk.init(dsn=DSN, transport=transport, default_integrations=False, auto_enabling_integrations=False)
    try:
        yield transport.events
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def tag(event: dict[str, Any]) -> str | None:
    """The event's ``transaction_id`` tag."""
    value = event.get("tags", {}).get("transaction_id")
    return None if value is None else str(value)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (same environment, so the same core twin)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=TESTS_PARENT,
    )
