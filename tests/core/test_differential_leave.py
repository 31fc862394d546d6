"""Differential tests of a request's end: the access-log and metrics stages' leave steps and
what the engine does when one fails (``Stage.drops_failure``). Both twins get the same hostile
scopes, methods, routes, statuses, sinks, providers, logging filters and apps, and must agree
on the request's outcome (exception types, messages and their chain), what reached the
server, the counts (series, active requests, drops), the access records and what was logged."""

from __future__ import annotations

import contextvars
import logging
from types import ModuleType
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.core._hostile import LyingInt, LyingText, Text
from tests.core.test_metrics import Route, counts, table_of


class Halt(BaseException):
    """Not an Exception: no stage may drop it."""


class RaisingPath:
    """A route whose path cannot be read."""

    __hash__ = None  # type: ignore[assignment]  # as Starlette's routes

    @property
    def path(self) -> str:
        raise LookupError("no path")


class LyingScope(dict):  # type: ignore[type-arg]
    """A scope that says it holds every key (a mount's app_root_path too)."""

    def __contains__(self, key: object) -> bool:
        return True


class RaisingScope(dict):  # type: ignore[type-arg]
    """A scope whose get raises for the route."""

    def get(self, key: Any, default: Any = None) -> Any:
        if key == "route":
            raise KeyError("route")
        return super().get(key, default)


SCOPES: dict[str, type] = {"dict": dict, "LyingScope": LyingScope, "RaisingScope": RaisingScope}
METHODS: dict[str, Any] = {"GET": "GET", "Text": Text("GET"), "LyingText": LyingText("POST"), "int": 7, "none": None}
ROUTES: dict[str, Any] = {
    "none": lambda: None,
    "plain": lambda: Route("/items/{id}"),
    "Text": lambda: Route(Text("/t")),
    "LyingText": lambda: Route(LyingText("/l")),
    "int": lambda: Route(7),  # type: ignore[arg-type]
    "raising": RaisingPath,
}
STATUSES: list[Any] = [200, 404, 599, 1000, -1, True, 2**70, LyingInt(503)]
APPS = ("responds", "raises", "halts", "silent")
SINKS = ("logger", "ok", "oserror", "halts")
VARYING = {"time", "duration_ms", "ttfb_ms"}


class Sink:
    """The JSON-lines sink's interface: keeps the records' steady fields, or fails."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.records: list[dict[str, Any]] = []

    def write_record(self, keys: Any, values: Any) -> None:
        if self.mode == "oserror":
            raise OSError("disk full")
        if self.mode == "halts":
            raise Halt("sink halted")
        self.records.append({key: repr(value) for key, value in zip(keys, values, strict=True) if key not in VARYING})


class Recording(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        self.seen.append((record.name, record.getMessage(), type(error).__name__, str(error)))


class RefuseDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if "dropped" in record.getMessage():
            raise LookupError("refused")
        return True


def chain(error: BaseException | None) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    while error is not None and len(found) < 5:
        found.append((type(error).__name__, str(error)))
        error = error.__context__
    return found


def request_end(twin: ModuleType, case: dict[str, Any]) -> dict[str, Any]:
    """One request through ``twin``'s access-log and metrics stages, as ``case`` says."""
    table, provider = table_of(twin, fail=case["provider_fails"])
    sink = Sink(case["sink"])
    access_logger = logging.getLogger("fastmw.tests.leave.access")
    access_logger.setLevel(logging.INFO)
    access_logger.propagate = False
    lines, logged = Recording(), Recording()
    access_logger.addHandler(lines)
    fastmw_logger = logging.getLogger("fastmw")
    fastmw_logger.addHandler(logged)
    refuse = RefuseDrops()
    if case["refuse_drops"]:
        logging.getLogger("fastmw.metrics").addFilter(refuse)
    access = twin.AccessLogStage(access_logger, logging.INFO, sink=None if case["sink"] == "logger" else sink)
    metrics = twin.MetricsStage(table)
    stages = [metrics, access] if case["metrics_outer"] else [access, metrics]
    route = ROUTES[case["route"]]()
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if route is not None:
            scope["route"] = route
        if case["app"] == "raises":
            raise RuntimeError("app failed")
        if case["app"] == "halts":
            raise Halt("app halted")
        if case["app"] == "responds":
            await send({"type": "http.response.start", "status": case["status"], "headers": []})
            await send({"type": "http.response.body", "body": b"abc"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"xy", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append((message["type"], repr(message.get("status"))))

    scope = SCOPES[case["scope"]](
        {"type": "http", "method": METHODS[case["method"]], "path": "/items/3", "headers": [], "query_string": b""}
    )

    def run_once() -> list[tuple[str, str]]:
        coro = twin.Pipeline(app, stages)(scope, receive, send)
        try:
            coro.send(None)
        except StopIteration:
            return []
        except BaseException as error:  # the comparison is the point
            return chain(error)
        coro.close()
        raise AssertionError("the pipeline suspended")

    try:
        raised = contextvars.copy_context().run(run_once)
    finally:
        access_logger.removeHandler(lines)
        fastmw_logger.removeHandler(logged)
        logging.getLogger("fastmw.metrics").removeFilter(refuse)
    # Each series' counts but the duration sum (a time).
    series = {key: counts(table, memory) for key, memory in provider.series.items()}
    for counted in series.values():
        del counted["duration_sum"]
    lines_seen = [(name, message.split(" ", 5)[:5]) for name, message, _, _ in lines.seen]
    return {
        "raised": raised,
        "sent": sent,
        "series": sorted(series.items(), key=repr),
        "active": provider.active(),
        "dropped": table.dropped,
        "records": sink.records,
        "lines": lines_seen,
        "logged": logged.seen,
    }


CASES = st.fixed_dictionaries(
    {
        "scope": st.sampled_from(sorted(SCOPES)),
        "method": st.sampled_from(sorted(METHODS)),
        "route": st.sampled_from(sorted(ROUTES)),
        "status": st.sampled_from(STATUSES),
        "app": st.sampled_from(APPS),
        "sink": st.sampled_from(SINKS),
        "provider_fails": st.booleans(),
        "refuse_drops": st.booleans(),
        "metrics_outer": st.booleans(),
    }
)


LYING_STATUS = {"scope": "dict", "method": "GET", "route": "plain", "status": LyingInt(503), "app": "responds"}


@settings(max_examples=400, deadline=None)
@given(case=CASES)
# An int status whose comparisons lie is counted under its value by both (the pure twin compared).
@example(case={**LYING_STATUS, "sink": "ok", "provider_fails": False, "refuse_drops": False, "metrics_outer": False})
def test_a_requests_end_agrees(twins: tuple[ModuleType, ModuleType], case: dict[str, Any]) -> None:
    compiled, pure = (request_end(twin, case) for twin in twins)
    assert compiled == pure


def test_the_cases_reach_every_kind_of_end(twins: tuple[ModuleType, ModuleType]) -> None:
    # The differential test's inputs lead to each outcome it is meant to compare: a request
    # counted, a drop reported, a report that raised, a Halt that no stage drops.
    base = {"scope": "dict", "method": "GET", "route": "plain", "status": 200, "app": "responds", "sink": "ok"}
    base.update(provider_fails=False, refuse_drops=False, metrics_outer=False)
    compiled, _ = twins
    counted = request_end(compiled, base)
    assert counted["raised"] == [] and counted["dropped"] == 0 and len(counted["series"]) == 1
    dropped = request_end(compiled, {**base, "route": "raising"})
    assert dropped["raised"] == [] and dropped["active"][-1] == 1  # the drop, counted in shared memory
    assert [message for _, message, _, _ in dropped["logged"]] == ["fastmw metrics dropped a request"]
    refused = request_end(compiled, {**base, "route": "raising", "refuse_drops": True, "app": "raises"})
    assert refused["raised"] == [
        ("LookupError", "refused"),
        ("LookupError", "no path"),
        ("RuntimeError", "app failed"),
    ]
    halted = request_end(compiled, {**base, "sink": "halts"})
    assert halted["raised"] == [("Halt", "sink halted")] and halted["active"][-1] == 0
