"""The fastmw sides' stacks for ``make bench-instructions``, built through fastmw's public API
only (``fastmw.RequestIdMiddleware(app)``, ``fastmw.stack(app)``, ``fastmw.plugins``,
``fastmw.JsonLinesSink``), so the table keeps working while the core is rewritten."""

from __future__ import annotations

from typing import Any

from benchmarks import _hand, init_sentry, stacks
from benchmarks._driver import ASGIApp
from benchmarks._instr_sides import Build


def fastmw_package() -> Any:
    import fastmw

    return fastmw


def fastmw_five(app: ASGIApp) -> ASGIApp:
    fm = fastmw_package()
    return stacks._fastmw_five(
        app,
        fm.RequestIdMiddleware,
        fm.AccessLogMiddleware,
        fm.TimingMiddleware,
        fm.ErrorMiddleware,
        fm.RawContextMiddleware,
        fm.plugins.RequestIdPlugin,
        fm.plugins.CorrelationIdPlugin,
    )


def fastmw_stack(app: ASGIApp) -> ASGIApp:
    return fastmw_package().stack(app)  # type: ignore[no-any-return]


def fastmw_stack_traced(app: ASGIApp) -> ASGIApp:
    # OpenTelemetry is installed in the bench venv: kept out, the stage reads the headers only.
    return fastmw_package().stack(app, trace_context={"opentelemetry": False})  # type: ignore[no-any-return]


def fastmw_stack_sentry(app: ASGIApp) -> ASGIApp:
    init_sentry()
    return fastmw_stack(app)


def asgi_correlation_id_sentry(app: ASGIApp) -> ASGIApp:
    init_sentry()
    return stacks.asgi_correlation_id(app)


def fastmw_request_id(app: ASGIApp) -> ASGIApp:
    return fastmw_package().RequestIdMiddleware(app)  # type: ignore[no-any-return]


def fastmw_timing(app: ASGIApp) -> ASGIApp:
    return fastmw_package().TimingMiddleware(app)  # type: ignore[no-any-return]


def fastmw_error(app: ASGIApp) -> ASGIApp:
    return fastmw_package().ErrorMiddleware(app)  # type: ignore[no-any-return]


def fastmw_access_log(app: ASGIApp) -> ASGIApp:
    return fastmw_package().AccessLogMiddleware(app)  # type: ignore[no-any-return]


def logging_to_null(build: Build, logger_name: str) -> Build:
    """``build``, with ``logger_name`` enabled at INFO into a NullHandler only."""

    def built(app: ASGIApp) -> ASGIApp:
        stacks.set_logger(logger_name, "null")
        return build(app)

    return built


def fastmw_context(app: ASGIApp) -> ASGIApp:
    fm = fastmw_package()
    return fm.RawContextMiddleware(  # type: ignore[no-any-return]
        app, plugins=[fm.plugins.RequestIdPlugin(), fm.plugins.CorrelationIdPlugin()]
    )


def json_lines_sink(stream: Any) -> Any:
    # The sink may move (fastmw.sink); the top-level name is the one to keep.
    return getattr(fastmw_package(), "JsonLinesSink")(stream)  # noqa: B009


def fastmw_json_sink(app: ASGIApp, sink: Any = None) -> ASGIApp:
    if sink is None:
        sink = json_lines_sink(_hand.devnull_binary())
    return fastmw_package().AccessLogMiddleware(app, sink=sink)  # type: ignore[no-any-return]
