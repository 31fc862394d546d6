"""``stack(app)``: the recommended production middleware stack, in the right order.

Outermost first: RequestId -> Timing -> BodyCache (opt-in) -> AccessLog -> Error -> app.

* the request id is outermost so every header, log line and error body has it;
* timing wraps everything that follows, so its headers land on error responses too;
* the access log sits outside the error middleware so it records the 500 it sends,
  and inside timing/request id so it reads their id and start time;
* errors are innermost so their 500 travels out through all the others.

Wrap the whole application object (``app = stack(app)``), not ``add_middleware``:
that way even Starlette's own ``ServerErrorMiddleware`` 500s carry the headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp

from fastmw.errors import ConfigurationError
from fastmw.middleware.access_log import AccessLogMiddleware
from fastmw.middleware.body_cache import BodyCacheMiddleware
from fastmw.middleware.error_handler import ErrorMiddleware
from fastmw.middleware.request_id import RequestIdMiddleware
from fastmw.middleware.timing import TimingMiddleware

Layer = bool | Mapping[str, Any] | None
PATH_OPTIONS = ("include_paths", "exclude_paths")


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
    app: ASGIApp,
    *,
    request_id: Layer = True,
    timing: Layer = True,
    body_cache: Layer = False,
    access_log: Layer = True,
    errors: Layer = True,
    include_paths: list[str] | None = None,
    exclude_paths: list[str] | None = None,
) -> ASGIApp:
    """Wrap ``app`` in the recommended stack. Each layer takes True (defaults), False/None
    (left out) or a mapping of its options; ``include_paths``/``exclude_paths`` apply to
    every layer that does not set its own."""
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
        ("timing", timing, TimingMiddleware),
        ("request_id", request_id, RequestIdMiddleware),
    )
    wrapped = app
    for name, layer, middleware in layers:
        options = _options(name, layer, shared)
        if options is not None:
            wrapped = middleware(wrapped, **options)
    return wrapped
