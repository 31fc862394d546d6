"""Request id: read or make one per request, keep it in a ContextVar, echo it back.

``RequestIdMiddleware`` is the fastmw one; ``CorrelationIdMiddleware`` takes
asgi-correlation-id's arguments and defaults so its users can switch imports.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from collections.abc import Callable
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from fastmw._impl import core as _default_core
from fastmw._options import build_stage, check_callable
from fastmw._route import ENGINE, Route, overridden
from fastmw.errors import ConfigurationError
from fastmw.middleware._fusion import FusableMiddleware
from fastmw.middleware._paths import PathFilter

DEFAULT_HEADER = "X-Request-ID"
DEFAULT_MAX_LENGTH = 128
REJECT_STATUS = 400
REJECT_BODY = json.dumps({"error": "invalid_request_id"}).encode()
WEBSOCKET_POLICY_VIOLATION = 1008
# asgi-correlation-id's warning, so log searches keep working after a switch.
FAILED_VALIDATION_MESSAGE = "Generated new request ID (%s), since request header value failed validation"
ON_INVALID = ("regenerate", "reject")

logger = logging.getLogger("fastmw.request_id")
# A replaced id is logged at most once per cause per this many seconds.
REPORT_INTERVAL = 60.0


class _Reporter:
    """Logs a replaced request id at most once per cause per ``interval`` seconds (0: every time)."""

    __slots__ = ("_interval", "_last", "_logger")

    def __init__(self, interval: float, logger: logging.Logger) -> None:
        self._interval = interval
        self._logger = logger
        self._last: dict[str, float] = {}

    def __call__(self, cause: str, value: str) -> None:
        now = _default_core.monotonic()
        last = self._last.get(cause)
        if last is not None and now - last < self._interval:
            return
        self._last[cause] = now
        if cause == "invalid":
            self._logger.warning(FAILED_VALIDATION_MESSAGE, value)
        else:
            self._logger.warning("request id generator/transformer gave an unusable id; using a random one")


def _load_sentry() -> bool:
    """Import fastmw.extensions.sentry (its event processor tags events with the request id)
    when sentry-sdk is installed; whether it is loaded. Nothing runs per request."""
    if sys.modules.get("sentry_sdk") is None and importlib.util.find_spec("sentry_sdk") is None:
        return False
    try:
        import fastmw.extensions.sentry  # noqa: F401
    except ImportError:
        logger.warning("sentry-sdk is installed but fastmw.extensions.sentry failed to import", exc_info=True)
        return False
    return True


class RequestIdMiddleware(FusableMiddleware):
    """Takes the request id from ``header_name`` (or makes one), validates and sanitises it,
    exposes it as ``fastmw.correlation_id`` and in the request context, and echoes it on
    ``http.response.start`` and ``websocket.accept``.

    The default accepts ids of 1-128 characters from ``[A-Za-z0-9._~+/=:@-]`` (what
    nginx, AWS, Heroku and Cloudflare send, UUIDs of any version); pass
    ``validator=fastmw.is_uuid`` (or ``is_uuid4``) to accept UUIDs only. The first
    request-id component of a request decides its id; the others reuse it.
    ``fallback_to_trace_id=True`` takes the current W3C trace id (a ``TraceContextMiddleware``
    outside) when the request has no id header.
    """

    # asgi-correlation-id appends on http responses only; fastmw sets on both.
    _echo = "set"
    _echo_websocket = True
    # How often a replaced id is logged, per cause (asgi-correlation-id: every time), and where.
    _report_interval = REPORT_INTERVAL
    _logger_name = "fastmw.request_id"

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = DEFAULT_HEADER,
        generator: Callable[[], str] = _default_core.new_request_id,
        validator: Callable[[str], bool] | None = _default_core.is_safe_id,
        transformer: Callable[[str], str] | None = None,
        update_request_header: bool = True,
        on_invalid: Literal["regenerate", "reject"] = "regenerate",
        reject_status: int = REJECT_STATUS,
        reject_body: bytes = REJECT_BODY,
        reject_media_type: str = "application/json",
        max_length: int = DEFAULT_MAX_LENGTH,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        fallback_to_trace_id: bool = False,
        fuse: bool = True,
    ) -> None:
        if not isinstance(header_name, str):
            raise ConfigurationError(f"header_name must be a str, got {header_name!r}")
        if on_invalid not in ON_INVALID:
            raise ConfigurationError(f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")
        if type(reject_status) is not int or not 400 <= reject_status <= 599:
            raise ConfigurationError(f"reject_status must be a 4xx/5xx int, got {reject_status!r}")
        if not isinstance(reject_body, bytes):
            raise ConfigurationError("reject_body must be bytes")
        # The stage takes None for the core's ids; the middleware asks for a callable.
        check_callable(generator, "generator")
        core = self._core
        hooks = overridden(type(self), RequestIdMiddleware, ("resolve",))
        # The default hooks are the core's own (the engine skips calling them): this core's.
        generator = core.new_request_id if generator is _default_core.new_request_id else generator
        validator = core.is_safe_id if validator is _default_core.is_safe_id else validator
        # Sentry: its event processor reads the request id when an event is built.
        self.sentry = _load_sentry()
        stage = build_stage(
            core.RequestIdStage,
            header_name,
            header_name,
            generator=generator,
            validator=validator,
            transformer=transformer,
            # A subclass overriding resolve() decides every id itself (the engine calls it).
            resolver=self.resolve if "resolve" in hooks else None,
            max_length=max_length,
            update_request_header=update_request_header,
            echo=self._echo,
            echo_websocket=self._echo_websocket,
            reject=self._send_reject,
            refuse_invalid=on_invalid == "reject",
            report=_Reporter(self._report_interval, logging.getLogger(self._logger_name)),
            fallback_to_trace_id=fallback_to_trace_id,
            paths=PathFilter(include_paths, exclude_paths),
        )
        self.header_name = header_name
        self.generator = generator
        self.validator = validator
        self.transformer = transformer
        self.update_request_header = bool(update_request_header)
        self.reject = on_invalid == "reject"
        self.max_length = max_length
        self._key = stage.key
        self._reject_headers = [
            (b"content-type", build_stage(core.encode_header_value, reject_media_type)),
            (b"content-length", str(len(reject_body)).encode()),
        ]
        self._reject_body = reject_body
        self._reject_status = reject_status
        self._attach(app, stage, fuse, Route(ENGINE, hooks))

    def resolve(self, raw: bytes | None) -> str | None:
        """The id for a request whose header held ``raw``; None means reject the request."""
        assert self._stage is not None
        # The built-in policy (a subclass's super().resolve() lands here, not in itself).
        return self._stage.default_resolve(raw)  # type: ignore[no-any-return]

    async def _send_reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
            return
        # A fresh id from the configured generator (the built-in policy makes one for no header).
        fresh = self._stage.default_resolve(None)
        headers = [*self._reject_headers, (self._key, fresh.encode("latin-1"))]
        await send({"type": "http.response.start", "status": self._reject_status, "headers": headers})
        await send({"type": "http.response.body", "body": self._reject_body})


def is_valid_uuid4(value: str) -> bool:
    """asgi-correlation-id's check: anything ``uuid.UUID`` parses (any 32 hex digits)."""
    return _default_core.is_uuid(value)


def _uuid4_hex() -> str:
    """asgi-correlation-id's default generator: ``uuid4().hex`` (the core's CSPRNG ids)."""
    return _default_core.new_request_id()


def _identity(value: str) -> str:
    """asgi-correlation-id's default transformer."""
    return value


class CorrelationIdMiddleware(RequestIdMiddleware):
    """Drop-in for ``asgi_correlation_id.CorrelationIdMiddleware`` (same arguments and defaults).

    Like the original it appends the id to http responses only and logs every replaced id
    (on the ``asgi_correlation_id`` logger, as the original does);
    unlike it, hostile or oversize ids are always replaced (sanitising cannot be switched off).
    """

    _echo = "append"
    _echo_websocket = False
    # asgi-correlation-id's logger name, so existing logging configs keep receiving its warnings.
    _report_interval = 0.0
    _logger_name = "asgi_correlation_id"

    def __init__(
        self,
        app: ASGIApp,
        header_name: str = DEFAULT_HEADER,
        update_request_header: bool = True,
        generator: Callable[[], str] = _uuid4_hex,
        validator: Callable[[str], bool] | None = is_valid_uuid4,
        transformer: Callable[[str], str] | None = _identity,
        *,
        on_invalid: Literal["regenerate", "reject"] = "regenerate",
        reject_status: int = REJECT_STATUS,
        reject_body: bytes = REJECT_BODY,
        reject_media_type: str = "application/json",
        max_length: int = DEFAULT_MAX_LENGTH,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        fallback_to_trace_id: bool = False,
        fuse: bool = True,
    ) -> None:
        # fastmw's own options are spelled out (not **options): with a catch-all, type
        # checkers refuse the class in Starlette's typed add_middleware().
        # The defaults are what the core does anyway: the engine skips calling them.
        super().__init__(
            app,
            header_name=header_name,
            update_request_header=update_request_header,
            generator=self._core.new_request_id if generator is _uuid4_hex else generator,
            validator=self._core.is_uuid if validator is is_valid_uuid4 else validator,
            transformer=None if transformer is _identity else transformer,
            on_invalid=on_invalid,
            reject_status=reject_status,
            reject_body=reject_body,
            reject_media_type=reject_media_type,
            max_length=max_length,
            include_paths=include_paths,
            exclude_paths=exclude_paths,
            fallback_to_trace_id=fallback_to_trace_id,
            fuse=fuse,
        )
        self.generator = generator
        self.validator = validator
        self.transformer = transformer
