"""The metrics table and stage (``metrics``), against both core twins, with in-memory providers."""

from __future__ import annotations

import logging
import struct
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import call_app, http_scope, run

# The core fixture gives both twins in the compiled pass.
pytestmark = pytest.mark.once

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


class Provider:
    """Hands out bytearrays: the counters and one per series, remembered with their labels."""

    def __init__(self, core: ModuleType, *, fail: bool = False) -> None:
        self.core = core
        self.counters = bytearray(core.COUNTER_WORDS * 8)
        self.series: dict[tuple[int, str, int], bytearray] = {}
        self.fail = fail
        self.words = 0

    def open(self) -> bytearray:
        if self.fail:
            raise OSError("no space left")
        return self.counters

    def allocate(self, method: int, route: str, status: int) -> bytearray:
        if self.fail:
            raise OSError("no space left")
        memory = self.series[(method, route, status)] = bytearray(self.words * 8)
        return memory

    def active(self) -> list[int]:
        return list(struct.unpack(f"<{self.core.COUNTER_WORDS}q", self.counters))


def table_of(core: ModuleType, **options: Any) -> tuple[Any, Provider]:
    provider = Provider(core, fail=options.pop("fail", False))
    table = core.MetricsTable(
        options.pop("duration", (0.1, 1.0)), options.pop("size", (10.0, 100.0)), provider, **options
    )
    provider.words = table.series_words
    return table, provider


def counts(table: Any, memory: bytearray) -> dict[str, Any]:
    """A series' counters, decoded: sums and per-bucket counts of the three histograms."""
    nd, ns = len(table.duration_buckets) + 1, len(table.size_buckets) + 1
    words = struct.unpack(f"<{len(memory) // 8}Q", memory)
    (duration_sum,) = struct.unpack_from("<d", memory)
    head = 3
    return {
        "duration_sum": duration_sum,
        "request_sum": words[1],
        "response_sum": words[2],
        "duration": list(words[head : head + nd]),
        "request": list(words[head + nd : head + nd + ns]),
        "response": list(words[head + nd + ns : head + nd + 2 * ns]),
    }


def exemplar(table: Any, memory: bytearray, bucket: int) -> tuple[bytes, bytes, float, float]:
    nd, ns = len(table.duration_buckets) + 1, len(table.size_buckets) + 1
    at = (3 + nd + 2 * ns + bucket * 8) * 8
    value, when = struct.unpack_from("<dd", memory, at + 48)
    return bytes(memory[at : at + 32]), bytes(memory[at + 32 : at + 48]), value, when


# --------------------------------------------------------------------------- constants and the table


def test_constants_are_opentelemetry_s(core: ModuleType) -> None:
    assert core.DURATION_BUCKETS == (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
    assert core.SIZE_BUCKETS[:3] == (0.0, 5.0, 10.0) and core.SIZE_BUCKETS[-1] == 10000.0
    assert core.METRIC_METHODS[-1] == "_OTHER" and len(core.METRIC_METHODS) == 10
    assert core.series_words(14, 15) == 3 + 15 * 9 + 2 * 16
    assert core.COUNTER_WORDS == 11


@pytest.mark.parametrize(
    ("method", "index"),
    [
        ("GET", 2),
        ("POST", 6),
        ("CONNECT", 0),
        ("TRACE", 8),
        ("get", 9),
        ("PROPFIND", 9),
        ("", 9),
        (None, 9),
        (b"GET", 9),
    ],
)
def test_method_index(core: ModuleType, method: Any, index: int) -> None:
    assert core.method_index(method) == index


def test_method_index_str_subclass_is_other(core: ModuleType) -> None:
    class Sneaky(str):
        pass

    assert core.method_index(Sneaky("GET")) == 9


@pytest.mark.parametrize(
    ("bounds", "error", "message"),
    [
        ((), ValueError, "1 to 64 bounds"),
        ((1.0, 1.0), ValueError, "strictly increasing"),
        ((2.0, 1.0), ValueError, "strictly increasing"),
        ((float("inf"),), ValueError, "finite"),
        ((float("nan"),), ValueError, "finite"),
        (("1",), TypeError, "numbers"),
        ((True,), TypeError, "numbers"),
        ("0.1", TypeError, "sequence"),
        (tuple(range(65)), ValueError, "1 to 64 bounds"),
    ],
)
def test_table_refuses_bad_buckets(core: ModuleType, bounds: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        core.MetricsTable(bounds, (1.0,), Provider(core))


def test_table_refuses_bad_provider_and_limits(core: ModuleType) -> None:
    with pytest.raises(TypeError, match="provider must have open"):
        core.MetricsTable((1.0,), (1.0,), object())
    for bad in (0, -1, 1.5, "3"):
        with pytest.raises(ValueError, match="max_routes"):
            core.MetricsTable((1.0,), (1.0,), Provider(core), max_routes=bad)


def test_record_counts_into_buckets(core: ModuleType) -> None:
    table, provider = table_of(core)
    table.record("GET", "/items/{id}", 200, 0.05, 0, 5)
    table.record("GET", "/items/{id}", 200, 0.1, 10, 11)  # on a bound: that bucket (le)
    table.record("GET", "/items/{id}", 200, 3.0, 500, 100)
    memory = provider.series[(2, "/items/{id}", 200)]
    got = counts(table, memory)
    assert got["duration"] == [2, 0, 1]
    assert got["request"] == [2, 0, 1] and got["response"] == [1, 2, 0]
    assert got["duration_sum"] == pytest.approx(3.15) and got["request_sum"] == 510 and got["response_sum"] == 116
    assert list(provider.series) == [(2, "/items/{id}", 200)]


def test_record_series_by_method_route_status(core: ModuleType) -> None:
    table, provider = table_of(core)
    table.record("GET", "/a", 200, 0.0)
    table.record("BREW", "/a", 200, 0.0)
    table.record("GET", None, 404, 0.0)
    table.record("GET", "/a", 1000, 0.0)  # no server sends it: counted as 0
    table.record("GET", "/a", -1, 0.0)
    assert sorted(provider.series) == [(2, "", 404), (2, "/a", 0), (2, "/a", 200), (9, "/a", 200)]
    assert counts(table, provider.series[(2, "/a", 0)])["duration"][0] == 2
    assert table.routes == 2


def test_record_refuses_bad_values(core: ModuleType) -> None:
    table, _ = table_of(core)
    with pytest.raises(TypeError, match="route must be a str"):
        table.record("GET", b"/a", 200, 0.1)
    with pytest.raises(TypeError, match="status must be an int"):
        table.record("GET", "/a", "200", 0.1)
    with pytest.raises(TypeError, match="duration must be a number"):
        table.record("GET", "/a", 200, "1")
    with pytest.raises(ValueError, match="request_bytes"):
        table.record("GET", "/a", 200, 0.1, -1)
    with pytest.raises(ValueError, match="trace_id must be 32"):
        table.record("GET", "/a", 200, 0.1, trace_id="XYZ", span_id=SPAN)
    with pytest.raises(ValueError, match="span_id must be 16"):
        table.record("GET", "/a", 200, 0.1, trace_id=TRACE, span_id=None)


def test_record_keeps_the_last_exemplar_per_bucket(core: ModuleType) -> None:
    table, provider = table_of(core)
    table.record("GET", "/a", 200, 0.05, trace_id=TRACE, span_id=SPAN, wall_time=100.5)
    table.record("GET", "/a", 200, 0.07, trace_id="1" * 32, span_id="2" * 16, wall_time=101.0)
    table.record("GET", "/a", 200, 5.0)
    memory = provider.series[(2, "/a", 200)]
    assert exemplar(table, memory, 0) == (b"1" * 32, b"2" * 16, 0.07, 101.0)
    assert exemplar(table, memory, 2) == (b"\0" * 32, b"\0" * 16, 0.0, 0.0)


def test_routes_past_the_limit_overflow(core: ModuleType) -> None:
    table, provider = table_of(core, max_routes=3)
    for index in range(5):
        table.record("GET", f"/r{index}", 200, 0.0)
    assert sorted(route for _, route, _ in provider.series) == ["/r0", "/r1", "_OTHER"]
    assert counts(table, provider.series[(2, "_OTHER", 200)])["duration"][0] == 3


def test_provider_memory_is_checked(core: ModuleType) -> None:
    table, provider = table_of(core)
    provider.words = 3  # too small
    with pytest.raises(ValueError, match="writable bytes"):
        table.record("GET", "/a", 200, 0.1)

    class ReadOnly(Provider):
        def allocate(self, method: int, route: str, status: int) -> bytearray:
            return bytes(self.words * 8)  # type: ignore[return-value]  # read-only, to be refused

    table = core.MetricsTable((1.0,), (1.0,), ReadOnly(core))
    with pytest.raises(ValueError, match="writable bytes"):
        table.record("GET", "/a", 200, 0.1)


def test_clear_asks_the_provider_again(core: ModuleType) -> None:
    table, provider = table_of(core)
    table.record("GET", "/a", 200, 0.1)
    first = provider.series[(2, "/a", 200)]
    table.clear()
    table.record("GET", "/a", 200, 0.1)
    assert provider.series[(2, "/a", 200)] is not first
    assert counts(table, first)["duration"] == [1, 0, 0]
    assert counts(table, provider.series[(2, "/a", 200)])["duration"] == [1, 0, 0]


def test_many_series_stay_apart(core: ModuleType) -> None:
    table, provider = table_of(core)
    for route in range(60):
        for status in (200, 404, 500):
            table.record("POST", f"/r/{route}", status, 0.5, route, status)
    assert len(provider.series) == 180
    for (method, label, code), memory in provider.series.items():
        got = counts(table, memory)
        assert method == 6 and got["duration"] == [0, 1, 0]
        assert got["request_sum"] == int(label.rsplit("/", 1)[1]) and got["response_sum"] == code


# --------------------------------------------------------------------------- the stage


class Route:
    def __init__(self, path: str) -> None:
        self.path = path

    __hash__ = None  # type: ignore[assignment]  # as Starlette's routes


def app_with(
    route: Any = None, status: int = 200, body: bytes = b"hello", fail: bool = False, **scope_keys: Any
) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if route is not None:
            scope["route"] = route
        scope.update(scope_keys)
        if fail:
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": body})

    return app


def serve(core: ModuleType, app: Any, stage: Any, scope: dict[str, Any] | None = None, body: bytes = b"") -> None:
    message = {"type": "http.request", "body": body, "more_body": False}
    run(call_app(core.Pipeline(app, [stage]), scope or http_scope("/items/3"), [message]))


def test_stage_configuration(core: ModuleType) -> None:
    table, _ = table_of(core)
    stage = core.MetricsStage(table)
    assert stage.table is table and stage.route_label is None and stage.exemplars == "sampled"
    assert stage.http_only and stage.wraps_receive and not stage.starts and not stage.catches
    with pytest.raises(TypeError, match="table must be a MetricsTable"):
        core.MetricsStage(object())
    with pytest.raises(TypeError, match="route_label must be callable"):
        core.MetricsStage(table, route_label="/a")
    with pytest.raises(ValueError, match="exemplars must be one of"):
        core.MetricsStage(table, exemplars="yes")


def test_stage_counts_a_framework_route(core: ModuleType) -> None:
    table, provider = table_of(core)
    serve(core, app_with(Route("/items/{item_id}")), core.MetricsStage(table), body=b"x" * 20)
    got = counts(table, provider.series[(2, "/items/{item_id}", 200)])
    assert got["request_sum"] == 20 and got["response_sum"] == 10
    assert sum(got["duration"]) == 1 and got["request"] == [0, 1, 0] and got["response"] == [1, 0, 0]
    assert provider.active()[2] == 0


def test_stage_unmatched_error_and_litestar(core: ModuleType) -> None:
    table, provider = table_of(core)
    stage = core.MetricsStage(table)
    serve(core, app_with(status=404), stage)
    with pytest.raises(RuntimeError):
        serve(core, app_with(Route("/boom"), fail=True), stage)
    serve(core, app_with(path_template="/users/{user_id:int}"), stage, http_scope("/users/1", method="DELETE"))
    assert sorted(provider.series) == [(1, "/users/{user_id:int}", 200), (2, "", 404), (2, "/boom", 500)]


def test_stage_reads_each_route_object_once(core: ModuleType) -> None:
    table, provider = table_of(core)
    stage = core.MetricsStage(table)
    route = Route("/items/{item_id}")
    for _ in range(3):
        serve(core, app_with(route), stage)
    route.path = "/renamed"  # a route object's label is read the first time the stage sees it
    serve(core, app_with(route), stage)
    assert counts(table, provider.series[(2, "/items/{item_id}", 200)])["duration"][0] == 4
    assert table.routes == 2


def test_stage_route_objects_made_per_request(core: ModuleType) -> None:
    # Route objects made and dropped per request, past the cache's limit: an address the
    # allocator hands out again never gives another route's label.
    table, provider = table_of(core, max_routes=core.ROUTE_CACHE_LIMIT + 100)
    stage = core.MetricsStage(table)
    requests = core.ROUTE_CACHE_LIMIT + 50
    for index in range(requests):
        serve(core, app_with(Route(f"/r{index % (requests // 2)}")), stage)
    got = {route: sum(counts(table, memory)["duration"]) for (_, route, _), memory in provider.series.items()}
    assert got == {f"/r{index}": 2 for index in range(requests // 2)}


def test_stage_never_initialised_is_refused(core: ModuleType) -> None:
    # Made with __new__ alone (no table): an AttributeError, never a crash.
    stage = core.MetricsStage.__new__(core.MetricsStage)
    with pytest.raises(AttributeError):
        serve(core, app_with(Route("/a")), stage)


def test_stage_mounted_routes(core: ModuleType) -> None:
    table, provider = table_of(core)
    stage = core.MetricsStage(table)
    serve(core, app_with(Route("/users/{id}"), root_path="/api/v1", app_root_path=""), stage)

    class Mount(Route):
        routes = ()

    serve(core, app_with(Mount("/static"), root_path="/static", app_root_path=""), stage)
    assert sorted(provider.series) == [(2, "/api/v1/users/{id}", 200), (2, "/static", 200)]


def test_stage_route_function(core: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    table, provider = table_of(core)
    labels = iter(["/custom", None, 42])

    def route(scope: Any) -> Any:
        value = next(labels, "boom")
        if value == "boom":
            raise LookupError("no route")
        return value

    stage = core.MetricsStage(table, route_label=route)
    with caplog.at_level(logging.ERROR, logger="fastmw.metrics"):
        for _ in range(4):
            serve(core, app_with(Route("/ignored")), stage)
    assert sorted(provider.series) == [(2, "", 200), (2, "/custom", 200)]
    assert counts(table, provider.series[(2, "", 200)])["duration"][0] == 3
    assert "gave int" in caplog.text and "LookupError" in caplog.text


def test_stage_exemplars(core: ModuleType) -> None:
    for mode, flags, kept in (("sampled", 1, True), ("sampled", 0, False), ("all", 0, True), (None, 1, False)):
        table, provider = table_of(core)
        stage = core.MetricsStage(table, exemplars=mode)
        trace = core.TraceStage(adopt=lambda flags=flags: core.TraceContext(TRACE, SPAN, None, flags))
        run(call_app(core.Pipeline(app_with(Route("/a")), [trace, stage]), http_scope("/a")))
        got = exemplar(table, provider.series[(2, "/a", 200)], 0)
        assert (got[0], got[1]) == ((TRACE.encode(), SPAN.encode()) if kept else (b"\0" * 32, b"\0" * 16))
        assert (got[3] > 1e9) is kept


def test_stage_active_gauge_during_the_request(core: ModuleType) -> None:
    table, provider = table_of(core)
    seen = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(provider.active()[6])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    serve(core, app, core.MetricsStage(table), http_scope("/", method="POST"))
    assert seen == [1] and provider.active()[6] == 0


def test_stage_leaves_websockets_and_paths_alone(core: ModuleType) -> None:
    table, provider = table_of(core)

    class Only:
        everything = False

        def applies(self, scope: Any) -> bool:
            return bool(scope["path"] != "/health")

    serve(core, app_with(Route("/health")), core.MetricsStage(table, paths=Only()), http_scope("/health"))
    assert provider.series == {}


def test_stage_failure_is_counted_not_raised(core: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    table, provider = table_of(core, fail=True)
    with caplog.at_level(logging.ERROR, logger="fastmw.metrics"):
        serve(core, app_with(Route("/a")), core.MetricsStage(table))
    assert table.dropped == 1 and "dropped a request" in caplog.text
    provider.fail = False
    serve(core, app_with(Route("/b")), core.MetricsStage(table))
    provider.fail = True
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="fastmw.metrics"):
        serve(core, app_with(Route("/c")), core.MetricsStage(table))
    assert provider.active()[-1] == 1 and table.dropped == 1  # counted in shared memory once it exists


def test_a_dropped_failure_leaves_the_apps_exception_as_it_was(
    core: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    # The app raised, then the stage could not count the request: the app's exception propagates
    # as it was (not replaced, not chained), and the drop is counted and logged with its cause.
    table, _ = table_of(core, fail=True)
    with caplog.at_level(logging.ERROR, logger="fastmw.metrics"), pytest.raises(RuntimeError, match="boom") as raised:
        serve(core, app_with(Route("/a"), fail=True), core.MetricsStage(table))
    assert raised.value.__context__ is None and table.dropped == 1
    [record] = [record for record in caplog.records if record.getMessage() == "fastmw metrics dropped a request"]
    assert type(record.exc_info[1]) is OSError  # type: ignore[index]


class RefuseDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == "fastmw metrics dropped a request":
            raise LookupError("refused")
        return True


@pytest.mark.parametrize("app_fails", [False, True])
def test_a_failure_to_report_a_drop_propagates_chained(core: ModuleType, app_fails: bool) -> None:
    # Reporting the drop raised (a logging filter that raises): nothing is lost, the report's
    # error propagates, chained to the failure, and that to the app's exception.
    table, _ = table_of(core, fail=True)
    logger = logging.getLogger("fastmw.metrics")
    refuse = RefuseDrops()
    logger.addFilter(refuse)
    try:
        with pytest.raises(LookupError) as raised:
            serve(core, app_with(Route("/a"), fail=app_fails), core.MetricsStage(table))
    finally:
        logger.removeFilter(refuse)
    failure = raised.value.__context__
    assert type(failure) is OSError and table.dropped == 1
    assert type(failure.__context__) is (RuntimeError if app_fails else type(None))


def test_the_stage_reads_the_requests_times(core: ModuleType) -> None:
    # The engine reads the clock for a request only when one of its stages is timed.
    table, _ = table_of(core)
    assert core.MetricsStage(table).timed
