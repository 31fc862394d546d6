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
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastmw._impl import core
from fastmw._storage import CORRELATION_ID, REQUEST_CONTEXT
from fastmw.errors import ConfigurationError
from fastmw.middleware._paths import PathFilter
from fastmw.middleware._pipeline import FusableMiddleware, Refuse

DEFAULT_HEADER = "X-Request-ID"
DEFAULT_MAX_LENGTH = 128
REJECT_STATUS = 400
REJECT_BODY = json.dumps({"error": "invalid_request_id"}).encode()
WEBSOCKET_POLICY_VIOLATION = 1008
# asgi-correlation-id's warning, so log searches keep working after a switch.
FAILED_VALIDATION_MESSAGE = "Generated new request ID (%s), since request header value failed validation"
ON_INVALID = ("regenerate", "reject")

logger = logging.getLogger("fastmw.request_id")

header_get = core.header_get
header_set = core.header_set
is_visible_ascii = core.is_visible_ascii
new_request_id = core.new_request_id
SendRecorder = core.SendRecorder


def _check_callable(value: object, option: str, optional: bool) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise ConfigurationError(f"{option} must be callable{' or None' if optional else ''}, got {value!r}")


def _sentry_hook() -> Callable[[str], None] | None:
    """fastmw.extensions.sentry's tagger when sentry-sdk is installed, else None (no import)."""
    if sys.modules.get("sentry_sdk") is None and importlib.util.find_spec("sentry_sdk") is None:
        return None
    try:
        from fastmw.extensions.sentry import set_transaction_id
    except ImportError:
        logger.warning("sentry-sdk is installed but fastmw.extensions.sentry failed to import", exc_info=True)
        return None
    return set_transaction_id


class RequestIdMiddleware(FusableMiddleware):
    """Takes the request id from ``header_name`` (or makes one), validates and sanitises it,
    exposes it as ``fastmw.correlation_id`` and in the request context, and echoes it on
    ``http.response.start`` and ``websocket.accept``."""

    # asgi-correlation-id appends on http responses only; fastmw sets on both.
    _append_header = False
    _echo_websocket = True

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str = DEFAULT_HEADER,
        generator: Callable[[], str] = core.new_request_id,
        validator: Callable[[str], bool] | None = core.is_uuid4,
        transformer: Callable[[str], str] | None = None,
        update_request_header: bool = True,
        on_invalid: Literal["regenerate", "reject"] = "regenerate",
        reject_status: int = REJECT_STATUS,
        reject_body: bytes = REJECT_BODY,
        reject_media_type: str = "application/json",
        max_length: int = DEFAULT_MAX_LENGTH,
        include_paths: list[str] | None = None,
        exclude_paths: list[str] | None = None,
        fuse: bool = True,
    ) -> None:
        self.app = app
        if not isinstance(header_name, str):
            raise ConfigurationError(f"header_name must be a str, got {header_name!r}")
        try:
            self._key = core.encode_header_name(header_name)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self.header_name = header_name
        _check_callable(generator, "generator", optional=False)
        _check_callable(validator, "validator", optional=True)
        _check_callable(transformer, "transformer", optional=True)
        if on_invalid not in ON_INVALID:
            raise ConfigurationError(f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")
        if type(max_length) is not int or max_length < 1:
            raise ConfigurationError(f"max_length must be a positive int, got {max_length!r}")
        if type(reject_status) is not int or not 400 <= reject_status <= 599:
            raise ConfigurationError(f"reject_status must be a 4xx/5xx int, got {reject_status!r}")
        if not isinstance(reject_body, bytes):
            raise ConfigurationError("reject_body must be bytes")
        self.generator = generator
        self.validator = validator
        self.transformer = transformer
        self.update_request_header = bool(update_request_header)
        self.reject = on_invalid == "reject"
        self.max_length = max_length
        self._reject_headers = [
            (b"content-type", core.encode_header_value(reject_media_type)),
            (b"content-length", str(len(reject_body)).encode()),
        ]
        self._reject_body = reject_body
        self._reject_status = reject_status
        self._paths = PathFilter(include_paths, exclude_paths)
        self._refusal = Refuse(self._reject_app)
        # The core's ids are always usable: a request without an id then costs one call.
        cls = type(self)
        self._core_ids = (
            generator in CORE_GENERATORS
            and transformer in (None, _identity)
            and max_length >= CORE_ID_LENGTH
            and cls.resolve is RequestIdMiddleware.resolve
            and cls._fresh is RequestIdMiddleware._fresh
        )
        # Sentry: decided once here; without sentry-sdk a request pays one None check.
        self.on_request_id: Callable[[str], None] | None = _sentry_hook()
        self._fuse_init(fuse)

    # ------------------------------------------------------------------ request step

    def _fresh(self) -> str:
        """A generated (and transformed) id, falling back to the core's if either misbehaves."""
        value = self.generator()
        if self.transformer is not None:
            value = self.transformer(value)
        if not is_visible_ascii(value, self.max_length):
            logger.warning("request id generator/transformer gave an unusable id; using a random one")
            return core.new_request_id()
        return value

    def resolve(self, raw: bytes | None) -> str | None:
        """The id for a request whose header held ``raw``; None means reject the request."""
        if not raw:
            return self._fresh()
        # Hostile values (CR/LF/NUL, non-ASCII, oversize) never reach the validator or a log.
        value = raw.decode("latin-1")
        if is_visible_ascii(value, self.max_length) and (self.validator is None or self.validator(value)):
            if self.transformer is not None:
                value = self.transformer(value)
                if not is_visible_ascii(value, self.max_length):
                    return self._fresh()
            return value
        if self.reject:
            return None
        value = self._fresh()
        logger.warning(FAILED_VALIDATION_MESSAGE, value)
        return value

    async def _reject_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._send_reject(scope, send)

    async def _send_reject(self, scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
            return
        headers = [*self._reject_headers, (self._key, self._fresh().encode("latin-1"))]
        await send({"type": "http.response.start", "status": self._reject_status, "headers": headers})
        await send({"type": "http.response.body", "body": self._reject_body})

    # ------------------------------------------------------------------ stage steps

    _starts = True

    def _stage_enter(self, scope: Scope, recorder: Any, receiver: Any) -> Any:
        headers = scope["headers"]
        raw = header_get(headers, self._key)
        value = new_request_id() if (not raw and self._core_ids) else self.resolve(raw)
        if value is None:
            return self._refusal
        encoded = value.encode("ascii")
        if self.update_request_header and encoded != raw:
            # A copy: the server's header list is not ours to mutate.
            if raw is None:
                # header_set would append it: no header of that name to replace.
                scope["headers"] = [*headers, (self._key, encoded)]
            else:
                headers = scope["headers"] = list(headers)
                header_set(headers, self._key, encoded)
        token = CORRELATION_ID.set(value)
        hook = self.on_request_id
        if hook is not None:
            try:
                hook(value)
            except Exception:  # a failing hook is reported, never raised into the request
                logger.exception("on_request_id hook %r failed", hook)
        data = REQUEST_CONTEXT.get(None)
        if data is not None:
            data[self.header_name] = value
        # (token, the echoed value or None)
        return token, encoded if (self._echo_websocket or scope["type"] == "http") else None

    def _stage_start(self, state: Any, recorder: Any, message: Message) -> None:
        encoded = state[1]
        if encoded is not None:
            if self._append_header:
                message["headers"].append((self._key, encoded))
            else:
                header_set(message["headers"], self._key, encoded)

    def _stage_exit(self, scope: Scope, recorder: Any, receiver: Any, state: Any, exc: BaseException | None) -> None:
        CORRELATION_ID.reset(state[0])


def is_valid_uuid4(value: str) -> bool:
    """asgi-correlation-id's check: anything ``uuid.UUID`` parses (any 32 hex digits)."""
    return core.is_uuid(value)


def _uuid4_hex() -> str:
    return core.new_request_id()


def _identity(value: str) -> str:
    return value


# Generators whose ids need no checking (always 32 lower-case hex characters).
CORE_GENERATORS = (core.new_request_id, _uuid4_hex)
CORE_ID_LENGTH = 32


class CorrelationIdMiddleware(RequestIdMiddleware):
    """Drop-in for ``asgi_correlation_id.CorrelationIdMiddleware`` (same arguments and defaults).

    Like the original it appends the id to http responses only; unlike it, hostile or
    oversize ids are always replaced (sanitising cannot be switched off).
    """

    _append_header = True
    _echo_websocket = False

    def __init__(
        self,
        app: ASGIApp,
        header_name: str = DEFAULT_HEADER,
        update_request_header: bool = True,
        generator: Callable[[], str] = _uuid4_hex,
        validator: Callable[[str], bool] | None = is_valid_uuid4,
        transformer: Callable[[str], str] | None = _identity,
        **options: Any,
    ) -> None:
        super().__init__(
            app,
            header_name=header_name,
            update_request_header=update_request_header,
            generator=generator,
            validator=validator,
            transformer=transformer,
            **options,
        )
