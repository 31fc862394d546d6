"""``stack(app)``: the recommended production middleware stack, in the right order.

Outermost first: TraceContext (opt-in) -> RequestId -> Timing -> Metrics (opt-in) -> BodyCache (opt-in)
-> AccessLog -> Error -> app.

* the request id is outermost so every header, log line and error body has it;
* timing wraps everything that follows, so its headers land on error responses too;
* the access log sits outside the error middleware so it records the 500 it sends,
  and inside timing/request id so it reads their id and start time;
* metrics sit outside the error middleware too (they count its 500s) and inside the
  trace context (their exemplars name its trace);
* errors are innermost so their 500 travels out through all the others.

Wrap the whole application object (``app = stack(app)``), not ``add_middleware``:
that way even Starlette's own ``ServerErrorMiddleware`` 500s carry the headers. The
result is a ``StackedApp``: calling it runs the stack, and every other attribute is the
wrapped app's (``app.state``, ``app.dependency_overrides``, ``@app.get(...)``).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Mapping
from functools import partial
from typing import Any, Generic, TypeVar

from fastmw._impl import building_on
from fastmw.errors import ConfigurationError
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.middleware.access_log import AccessLogMiddleware
from fastmw.middleware.body_cache import BodyCacheMiddleware
from fastmw.middleware.error_handler import ErrorMiddleware
from fastmw.middleware.metrics import MetricsMiddleware
from fastmw.middleware.request_id import RequestIdMiddleware
from fastmw.middleware.timing import TimingMiddleware
from fastmw.middleware.trace_context import TraceContextMiddleware
from fastmw.types import ASGIApp

__all__ = ["StackedApp", "stack"]

Layer = bool | Mapping[str, Any] | None
# The application given to stack(): ``StackedApp[AppT].wrapped`` is typed as it.
AppT = TypeVar("AppT", bound=ASGIApp)
ASGI_SHAPE = "an ASGI 3 application is `async def app(scope, receive, send)` or an object with such a `__call__`"


class StackedApp(FusableMiddleware, Generic[AppT]):
    """What ``stack()`` returns: calling it runs the middleware stack; reading, setting or
    deleting any other attribute reaches the wrapped app.

    ``app`` is the outermost fastmw middleware (the next layer, as in any middleware) and
    ``wrapped`` the application given to ``stack()``, typed as it (``stack(FastAPI())``
    is a ``StackedApp[FastAPI]``, its ``wrapped`` a ``FastAPI``); both are read-only. Middleware added
    afterwards through the app (``add_middleware``) runs inside the stack.

    It is a pipeline with the stack's stages (the engine's ``__call__``, no extra layer),
    so a fastmw middleware built around it (``RawContextMiddleware(app=stack(api))``) fuses
    with them as with the outermost middleware itself.
    """

    _middleware: FusableMiddleware | None
    _wrapped: AppT

    def __new__(cls, middleware: FusableMiddleware | None, wrapped: AppT) -> Any:
        # On the core of the stack's middlewares (they were all built on one).
        if middleware is None:
            return super().__new__(cls)
        with building_on(middleware._core):
            return super().__new__(cls)

    def __init__(self, middleware: FusableMiddleware | None, wrapped: AppT) -> None:
        # object.__setattr__: our own __setattr__ forwards to the app.
        object.__setattr__(self, "_middleware", middleware)
        object.__setattr__(self, "_wrapped", wrapped)
        if middleware is not None:
            object.__setattr__(self, "fuse", middleware.fuse)
            object.__setattr__(self, "_route", middleware.route)
            # A pipeline the outermost middleware rebuilds when any of its levels changes.
            middleware._fusers.add(self)
        self._build()

    def _build(self) -> None:
        middleware = self._middleware
        if middleware is None:
            self.configure(self._wrapped, ())
        else:
            # The outermost middleware's pipeline, taken over as it is now.
            object.__setattr__(self, "_stage", middleware._stage)
            object.__setattr__(self, "_members", middleware._members)
            self.configure(middleware.terminal, middleware.stages, middleware.other)
        for outer in list(self._fusers):
            outer._build()

    @property  # type: ignore[misc]  # read-only here: __setattr__ refuses the stack's own names
    def app(self) -> ASGIApp:
        """The outermost fastmw middleware (the wrapped app itself when every layer is off)."""
        return self._wrapped if self._middleware is None else self._middleware

    @property
    def wrapped(self) -> AppT:
        """The application given to ``stack()``."""
        return self._wrapped

    def _joins(self, outer: FusableMiddleware) -> bool:
        return self._middleware is not None and self._middleware._joins(outer)

    # ------------------------------------------------------------------ forwarding

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the stack itself does not have.
        try:
            wrapped = self.__dict__["_wrapped"]
        except KeyError:  # half-built (copy, unpickling): nothing to forward to yet
            raise AttributeError(name) from None
        return getattr(wrapped, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            # The pipeline's own state (the pure twin keeps it in plain attributes).
            object.__setattr__(self, name, value)
            return
        if hasattr(type(self), name):
            raise AttributeError(f"{name!r} is the stacked app's own attribute; build a new stack() instead")
        setattr(self._wrapped, name, value)

    def __delattr__(self, name: str) -> None:
        if hasattr(type(self), name):
            raise AttributeError(f"{name!r} is the stacked app's own attribute")
        delattr(self._wrapped, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(type(self))) | set(dir(self._wrapped)))

    def __repr__(self) -> str:
        names, layer = [], self.app
        while isinstance(layer, FusableMiddleware) and layer is not self._wrapped:
            names.append(type(layer).__name__)
            layer = layer.app
        return f"<StackedApp {' -> '.join([*names, type(self._wrapped).__name__])}>"


def _is_async_callable(app: Any) -> bool:
    """False only for a Python function or method (or a ``__call__`` that is one) that is
    not ``async``; other callables (C, Cython) are taken at their word."""
    while isinstance(app, partial):
        app = app.func
    call = app if inspect.isroutine(app) else type(app).__dict__.get("__call__") or type(app).__call__
    if isinstance(call, types.MethodType):
        call = call.__func__
    return not isinstance(call, types.FunctionType) or inspect.iscoroutinefunction(call)


def _takes_three_arguments(app: Any) -> bool:
    """False only when ``app``'s signature is known and cannot bind (scope, receive, send)."""
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):
        return True  # no signature to read (some C callables): taken at its word
    try:
        signature.bind(None, None, None)
    except TypeError:
        return False
    return True


def _check_app(app: Any) -> None:
    """Refuse, at startup, what cannot be an ASGI 3 application."""
    if app is None:
        raise ConfigurationError(f"stack() needs an ASGI application, got None ({ASGI_SHAPE})")
    if inspect.isclass(app):
        raise ConfigurationError(
            f"stack() needs an ASGI application instance, got the class {app.__qualname__}: "
            f"pass {app.__qualname__}(...), not {app.__qualname__}"
        )
    if not callable(app):
        raise ConfigurationError(f"stack() needs an ASGI application, got {type(app).__name__} {app!r} ({ASGI_SHAPE})")
    if not _is_async_callable(app):
        raise ConfigurationError(f"stack() needs an ASGI application, got the sync callable {app!r} ({ASGI_SHAPE})")
    if not _takes_three_arguments(app):
        raise ConfigurationError(
            f"stack() needs an ASGI 3 application called as app(scope, receive, send), got {app!r}, which cannot "
            f"take those three arguments: add the send parameter ({ASGI_SHAPE})"
        )


def _options(name: str, layer: Layer, shared: dict[str, Any]) -> dict[str, Any] | None:
    """The keyword options for one layer, or None when it is switched off."""
    if layer is None or layer is False:
        return None
    if layer is True:
        return dict(shared)
    if isinstance(layer, Mapping):
        return {**shared, **layer}
    raise ConfigurationError(f"{name} must be True, False, None or a mapping of options, got {layer!r}")


def stack(
    app: AppT,
    *,
    trace_context: Layer = False,
    request_id: Layer = True,
    timing: Layer = True,
    body_cache: Layer = False,
    metrics: Layer = False,
    access_log: Layer = True,
    errors: Layer = True,
    include_paths: list[str] | None = None,
    exclude_paths: list[str] | None = None,
) -> StackedApp[AppT]:
    """Wrap ``app`` in the recommended stack. Each layer takes True (defaults), False/None
    (left out) or a mapping of its options; ``include_paths``/``exclude_paths`` apply to
    every layer that does not set its own. Returns a ``StackedApp`` that forwards every
    attribute but its call to ``app`` (typed ``StackedApp[type of app]``: ``.wrapped`` is ``app``)."""
    _check_app(app)
    shared: dict[str, Any] = {}
    if include_paths is not None:
        shared["include_paths"] = include_paths
    if exclude_paths is not None:
        shared["exclude_paths"] = exclude_paths
    # Innermost first, so the last wrapper applied is the outermost.
    layers = (
        ("errors", errors, ErrorMiddleware),
        ("access_log", access_log, AccessLogMiddleware),
        ("body_cache", body_cache, BodyCacheMiddleware),
        ("metrics", metrics, MetricsMiddleware),
        ("timing", timing, TimingMiddleware),
        ("request_id", request_id, RequestIdMiddleware),
        ("trace_context", trace_context, TraceContextMiddleware),
    )
    wrapped: ASGIApp = app
    outermost: FusableMiddleware | None = None
    for name, layer, middleware in layers:
        options = _options(name, layer, shared)
        if options is not None:
            outermost = middleware(wrapped, **options)
            wrapped = outermost
    return StackedApp(outermost, app)
