"""fastmw.extensions.celery against a real Celery worker (in-memory broker, one worker thread)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from celery import Celery, chain
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun
from celery.worker import state as worker_state
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fastmw import CorrelationIdMiddleware, celery_current_id, celery_parent_id, correlation_id
from fastmw.extensions.celery import load_celery_current_and_parent_ids, load_correlation_ids, uuid_hex_generator
from tests.extensions.conftest import LOGGER, RecordingHandler, run_python, tag
from tests.helpers import run

TIMEOUT = 10.0
POLL = 0.005  # how often result.get() looks at the in-memory result backend
SIGNALS = (before_task_publish, task_prerun, task_postrun)
logger = logging.getLogger(LOGGER)

celery_app = Celery("fastmw_tests", broker="memory://", backend="cache+memory://", set_as_current=False)
celery_app.conf.update(
    broker_connection_retry_on_startup=True,
    # The in-memory broker polls once a second by default: far too slow for a test run.
    broker_transport_options={"polling_interval": 0.005},
    worker_hijack_root_logger=False,
)


@celery_app.task
def hop(depth: int) -> None:
    """Logs, then publishes the next hop itself (asgi-correlation-id's README example)."""
    logger.info("hop %d", depth)
    if depth > 1:
        hop.delay(depth - 1)


@celery_app.task
def step(name: str) -> str:
    logger.info("step %s", name)
    return name


@celery_app.task(bind=True)
def snapshot(self: Any) -> dict[str, Any]:
    """What the running task sees."""
    return {
        "correlation_id": correlation_id.get(),
        "current": celery_current_id.get(),
        "parent": celery_parent_id.get(),
        "task_id": self.request.id,
    }


@celery_app.task
def report() -> None:
    sentry_sdk.capture_message("from a task")


def _keep_logging(**kwargs: Any) -> None:
    """A setup_logging receiver: the worker leaves the test run's logging alone."""


@pytest.fixture(scope="module")
def worker() -> Iterator[None]:
    """One embedded worker (solo pool, in a thread) for the whole module."""
    setup_logging.connect(_keep_logging, weak=False)
    try:
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=TIMEOUT):
            yield
            # The worker notices the stop flag only after its broker poll (2 s, twice) returns:
            # raise the flag ourselves and wake both polls with a message each.
            worker_state.should_terminate = 0
            snapshot.delay()
            snapshot.delay()
    finally:
        setup_logging.disconnect(_keep_logging)


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def settle() -> None:
    """Waits until the worker ran every receiver of every task published so far."""
    task_id = uuid.uuid4().hex
    done = threading.Event()

    def mark(**kwargs: Any) -> None:  # connected last: runs after the others for this task
        if kwargs["task_id"] == task_id:
            done.set()

    task_postrun.connect(mark, weak=False)
    try:
        snapshot.apply_async(task_id=task_id).get(timeout=TIMEOUT, interval=POLL)
        assert done.wait(TIMEOUT)
    finally:
        task_postrun.disconnect(mark)


@pytest.fixture
def signals(worker: None) -> Iterator[None]:
    """Disconnects whatever receivers the test connected (load_* has no undo)."""
    before = {sig: list(sig.receivers) for sig in SIGNALS}
    try:
        yield
    finally:
        settle()
        for sig in SIGNALS:
            for key_and_receiver in sig.receivers[:]:
                if key_and_receiver not in before[sig]:
                    sig.disconnect(key_and_receiver[1])


@pytest.fixture
def tracing(signals: None) -> None:
    """asgi-correlation-id's documented setup, with every default."""
    load_correlation_ids()
    load_celery_current_and_parent_ids()


def is_hex_uuid(value: object) -> bool:
    return isinstance(value, str) and len(value) == 32 and uuid.UUID(value).hex == value


def check_chain(records: list[logging.LogRecord], cid: str | None) -> None:
    """One correlation id all along; each task's parent is the previous task's current id."""
    first = records[0].correlation_id  # type: ignore[attr-defined]
    assert is_hex_uuid(first) and (cid is None or first == cid)
    parent = None
    for rec in records:
        assert rec.correlation_id == first  # type: ignore[attr-defined]
        assert is_hex_uuid(rec.celery_current_id)  # type: ignore[attr-defined]
        assert rec.celery_parent_id == parent  # type: ignore[attr-defined]
        parent = rec.celery_current_id  # type: ignore[attr-defined]
    assert len({r.celery_current_id for r in records}) == len(records)  # type: ignore[attr-defined]


def run_chain(kind: str, depth: int) -> None:
    if kind == "delay":
        hop.delay(depth).get(timeout=TIMEOUT, interval=POLL)
    else:
        chain(*(step.si(f"s{i}") for i in range(depth))).apply_async().get(timeout=TIMEOUT, interval=POLL)


async def publishing_view(request: Request) -> JSONResponse:
    logger.info("view")
    run_chain(request.path_params["kind"], int(request.path_params["depth"]))
    return JSONResponse({})


def sync_view(request: Request) -> JSONResponse:
    """A sync endpoint runs in Starlette's threadpool, in a copy of the request's context."""
    logger.info("view")
    return JSONResponse(snapshot.delay().get(timeout=TIMEOUT, interval=POLL))


web_app = CorrelationIdMiddleware(
    Starlette(routes=[Route("/chain/{kind}/{depth:int}", publishing_view), Route("/sync", sync_view)])
)


async def get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize("kind", ["delay", "chain"])
@pytest.mark.parametrize("depth", [2, 3])
def test_request_to_workers(tracing: None, log_records: RecordingHandler, kind: str, depth: int) -> None:
    cid = uuid.uuid4().hex
    response = run(get(f"/chain/{kind}/{depth}", {"X-Request-ID": cid}))
    assert response.status_code == 200 and response.headers["x-request-id"] == cid
    view, *tasks = log_records.wait_for(1 + depth)
    assert (view.correlation_id, view.celery_parent_id, view.celery_current_id) == (cid, None, None)  # type: ignore[attr-defined]
    assert len(tasks) == depth
    check_chain(tasks, cid)


@pytest.mark.parametrize("kind", ["delay", "chain"])
@pytest.mark.parametrize("depth", [2, 3])
def test_worker_to_workers_gets_a_generated_id(
    tracing: None, log_records: RecordingHandler, kind: str, depth: int
) -> None:
    assert correlation_id.get() is None
    run_chain(kind, depth)
    check_chain(log_records.wait_for(depth), None)


def test_each_task_outside_a_request_gets_its_own_id(tracing: None) -> None:
    first, second = (snapshot.delay().get(timeout=TIMEOUT, interval=POLL) for _ in range(2))
    assert is_hex_uuid(first["correlation_id"]) and is_hex_uuid(second["correlation_id"])
    assert first["correlation_id"] != second["correlation_id"]
    assert first["parent"] is None and second["parent"] is None


def test_sync_endpoint_publishes_with_the_request_id(tracing: None, log_records: RecordingHandler) -> None:
    cid = uuid.uuid4().hex
    seen = run(get("/sync", {"X-Request-ID": cid})).json()
    assert seen["correlation_id"] == cid and is_hex_uuid(seen["current"]) and seen["parent"] is None
    assert log_records.wait_for(1)[0].correlation_id == cid  # type: ignore[attr-defined]


def test_ids_are_cleared_after_each_task(tracing: None) -> None:
    after: list[tuple[str | None, ...]] = []

    def look(**kwargs: Any) -> None:  # connected last, so it runs after the clean-up receivers
        after.append((correlation_id.get(), celery_current_id.get(), celery_parent_id.get()))

    task_postrun.connect(look, weak=False)
    cid = uuid.uuid4().hex
    token = correlation_id.set(cid)
    try:
        during = snapshot.delay().get(timeout=TIMEOUT, interval=POLL)
    finally:
        correlation_id.reset(token)
    chain(step.si("a"), step.si("b")).apply_async().get(timeout=TIMEOUT, interval=POLL)
    assert during["correlation_id"] == cid and during["current"] is not None
    wait_until(lambda: len(after) == 3)
    assert after == [(None, None, None)] * 3


def test_internal_task_id_custom_headers_and_generators(signals: None) -> None:
    made = iter(f"gen-{i}" for i in range(10))
    load_correlation_ids(header_key="X_CID", generator=lambda: next(made))
    load_celery_current_and_parent_ids(header_key="X_PARENT", use_internal_celery_task_id=True)
    seen = snapshot.delay().get(timeout=TIMEOUT, interval=POLL)
    assert seen["correlation_id"] == "gen-0" and seen["current"] == seen["task_id"]

    published: list[dict[str, Any]] = []

    def grab(headers: dict[str, Any], **kwargs: Any) -> None:
        published.append(dict(headers))

    before_task_publish.connect(grab, weak=False)
    token = correlation_id.set("request-id")
    try:
        seen = snapshot.delay().get(timeout=TIMEOUT, interval=POLL)
    finally:
        correlation_id.reset(token)
    assert seen["correlation_id"] == "request-id"
    assert published[0]["X_CID"] == "request-id" and "X_PARENT" not in published[0]
    assert "CORRELATION_ID" not in published[0]


def test_default_generator_makes_uuid4_hex() -> None:
    values = {uuid_hex_generator() for _ in range(100)}
    assert len(values) == 100
    assert all(is_hex_uuid(v) and uuid.UUID(v).version == 4 for v in values)


def test_task_tags_sentry_events_with_its_id(tracing: None, sentry_events: list[dict[str, Any]]) -> None:
    token = correlation_id.set("cid-from-request")
    try:
        report.delay().get(timeout=TIMEOUT, interval=POLL)
    finally:
        correlation_id.reset(token)
    report.delay().get(timeout=TIMEOUT, interval=POLL)
    first, second = sentry_events
    assert tag(first) == "cid-from-request"
    assert is_hex_uuid(tag(second))


def test_without_celery_a_clear_import_error() -> None:
    done = run_python(
        """
        import sys
        sys.modules["celery"] = None  # as if Celery were not installed
        import fastmw
        try:
            import fastmw.extensions.celery
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("imported")
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install fastmw[celery]" in done.stdout
