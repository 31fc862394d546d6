"""The engine's stages: request id, timing, body cache, errors, request context.

(The access log stage has its own module, ``access``.)
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from contextvars import Token
from typing import Any, cast

from fastmw._core_py._common import _MISSING, RawHeaders, _shown, _type_name
from fastmw._core_py.engine import Stage, _published_trace
from fastmw._core_py.error_stage import note_request_id
from fastmw._core_py.headers import encode_header_name, header_get, header_set
from fastmw._core_py.ids import is_visible_ascii, monotonic, new_request_id
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder
from fastmw._storage import CORRELATION_ID, REQUEST_CONTEXT
from fastmw.types import PathFilter, Scope

ECHO_MODES = ("set", "append", None)
# The longest request id kept by default.
DEFAULT_ID_LENGTH = 128
SAFE_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=:@-")
SAFE_ID_BYTES = frozenset("".join(sorted(SAFE_ID_CHARS)).encode())
# The resolved request id, kept in the scope so every component of the request reuses it.
ID_SCOPE_KEY = "fastmw.request_id"
# The body cache's recorder is also put in scope["state"] under this key.
BODY_STATE_KEY = "fastmw.body_cache"
SERVER_TIMING = b"server-timing"
SERVER_TIMING_PREFIX = b"app;dur="
POW10 = tuple(10.0**n for n in range(10))
ERROR_CODE = "internal_error"
ERROR_STATUS = 500
WEBSOCKET_INTERNAL_ERROR = 1011

_timing_logger = logging.getLogger("fastmw.timing")
_error_logger = logging.getLogger("fastmw.error")

Hook = Callable[..., Any] | None
# Per-request states: the request id's context token and the header value it echoes
# (None: no echo); the body cache's outer recorder and the scope's "state" dict it wrote to.
IdState = tuple[Token[str | None], bytes | None]
BodyState = tuple[ReceiveRecorder | None, dict[str, Any] | None]

# --------------------------------------------------------------------------- request id


class RequestIdStage(Stage):
    """Reads (or makes) the request id, exposes it and echoes it on the response start.

    The first request-id component of a request resolves the id and echoes it; any
    other one inside it (a second middleware, a request-id plugin) reuses it, so a
    request has one id and one echoed header. ``echo`` is ``"set"``, ``"append"``
    (http only) or ``None``. ``report(cause, value)`` is told when an id is replaced.
    """

    def __init__(
        self,
        key: str | bytes,
        context_key: str,
        *,
        generator: Hook = None,
        validator: Hook = None,
        transformer: Hook = None,
        resolver: Hook = None,
        max_length: int = DEFAULT_ID_LENGTH,
        update_request_header: bool = True,
        echo: str | None = "set",
        echo_websocket: bool = True,
        reject: Hook = None,
        refuse_invalid: bool = False,
        report: Hook = None,
        fallback_to_trace_id: bool = False,
        paths: PathFilter | None = None,
    ) -> None:
        Stage.__init__(self, paths=paths)
        if echo not in ECHO_MODES:
            raise ValueError(f"echo must be one of {ECHO_MODES}, got {echo!r}")
        if type(max_length) is not int or not 1 <= max_length <= sys.maxsize:
            raise ValueError("max_length must be a positive int")
        hooks = (
            ("generator", generator),
            ("validator", validator),
            ("transformer", transformer),
            ("resolver", resolver),
            ("reject", reject),
            ("report", report),
        )
        for name, hook in hooks:
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable or None, not {_type_name(hook)}")
        self.key = encode_header_name(key)
        self.context_key = str(context_key)
        self.generator: Callable[[], Any] = new_request_id if generator is None else generator
        self.validator = validator
        self.transformer = transformer
        self.resolver = resolver
        self.max_length = max_length
        self.update_request_header = bool(update_request_header)
        self.echo = echo
        self.echo_websocket = bool(echo_websocket)
        self.reject = reject
        self.refuse_invalid = bool(refuse_invalid)
        self.report = report
        self.fallback_to_trace_id = bool(fallback_to_trace_id)
        self.starts = echo is not None
        self._append = echo == "append"
        # Ids the core makes need no checks: 32 lower-case hex characters.
        self._core_ids = self.generator is new_request_id and transformer is None and resolver is None
        self._safe_ids = validator is is_safe_id and transformer is None and resolver is None
        self._freeze()

    def _fresh(self) -> Any:
        value = self.generator()
        if self.transformer is not None:
            value = self.transformer(value)
        if not is_visible_ascii(value, self.max_length):
            if self.report is not None:
                self.report("unusable", value)
            return new_request_id()
        return value

    def resolve(self, raw: bytes | None) -> Any:
        """The id for a request whose header held ``raw`` (bytes or None); None: refuse it.
        The ``resolver``'s answer when there is one, else ``default_resolve(raw)``."""
        if self.resolver is not None:
            return self.resolver(raw)
        return self.default_resolve(raw)

    def default_resolve(self, raw: bytes | None) -> Any:
        """The built-in policy: a fresh id for none, the sanitised, validated and transformed
        id, or for an invalid one a fresh id (reported) or None with ``refuse_invalid``."""
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
        if self.refuse_invalid:
            return None
        value = self._fresh()
        if self.report is not None:
            self.report("invalid", value)
        return value

    def enter(self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, index: int) -> int:
        found = scope.get(ID_SCOPE_KEY, _MISSING) if type(scope) is dict else _MISSING
        if found is not _MISSING:
            # An outer component resolved this request's id: reuse it, it echoes.
            _context_put(self.context_key, found)
            return 0
        headers = scope.get("headers") or []
        raw = header_get(headers, self.key)
        trace = _published_trace(ex) if raw is None and self.fallback_to_trace_id else None
        if trace is not None:
            value = trace.trace_id  # the trace stage outside made one current
        elif raw is None and self._core_ids:
            value = new_request_id()
        elif raw is not None and self._safe_ids and _safe_id_bytes(raw, self.max_length):
            value = raw.decode("ascii")
        else:
            value = self.resolve(raw)
            if value is None:
                if self.reject is None:
                    raise ValueError("the request id was refused (None) but no reject app is configured")
                ex._refusal = self.reject
                return 1
            if self.resolver is not None and not is_visible_ascii(value, sys.maxsize):
                raise ValueError(f"request id resolver gave an unusable id {_shown(repr(value))}")
        encoded = value.encode("latin-1")
        if self.update_request_header and encoded != raw:
            # A copy: the server's header list is not ours to mutate.
            if raw is None:
                scope["headers"] = [*headers, (self.key, encoded)]
            else:
                headers = scope["headers"] = list(headers)
                header_set(headers, self.key, encoded)
        scope[ID_SCOPE_KEY] = value
        token = CORRELATION_ID.set(value)
        _context_put(self.context_key, value)
        states = ex._states
        assert states is not None
        if self.echo is not None and (self.echo_websocket or scope["type"] == "http"):
            states[index] = (token, encoded)
        else:
            states[index] = (token, None)
        return 0

    def start(self, ex: SendRecorder, state: object, message: dict[str, Any], headers: RawHeaders) -> int:
        if state is None:
            return 0
        encoded = cast(IdState, state)[1]
        if encoded is not None:
            if self._append:
                headers.append((self.key, encoded))
            else:
                header_set(headers, self.key, encoded)
        return 0

    def leave(
        self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, state: object, exc: BaseException | None
    ) -> BaseException | None:
        if state is not None:
            if exc is not None:
                # The id goes along with the exception (the server's traceback, Sentry).
                note_request_id(exc, CORRELATION_ID.get())
            CORRELATION_ID.reset(cast(IdState, state)[0])
        return exc


def _context_put(key: Any, value: Any) -> None:
    """``context[key] = value`` when a request context is active."""
    data = REQUEST_CONTEXT.get(None)
    if data is not None:
        data[key] = value


def _safe_id_bytes(raw: bytes, max_length: int) -> bool:
    return 0 < len(raw) <= max_length and SAFE_ID_BYTES.issuperset(raw)


def is_safe_id(value: object) -> bool:
    """Whether ``value`` is a str of 1-128 characters from ``[A-Za-z0-9._~+/=:@-]``:
    the ids proxies and platforms send (nginx, UUIDs of any version, AWS, Heroku, Cloudflare)."""
    if type(value) is not str:
        if not isinstance(value, str):
            return False
        value = str.__str__(value)  # a subclass is read for its text, not its own methods
    return 0 < len(value) <= DEFAULT_ID_LENGTH and SAFE_ID_CHARS.issuperset(value)


# --------------------------------------------------------------------------- timing


class TimingStage(Stage):
    """Timing headers on the response start; ``callback(scope, ttfb, total)`` at the end."""

    def __init__(
        self,
        key: str | bytes | None = None,
        *,
        precision: int = 4,
        server_timing: bool = True,
        callback: Hook = None,
        paths: PathFilter | None = None,
    ) -> None:
        Stage.__init__(self, paths=paths)
        if type(precision) is not int or not 0 <= precision <= 9:
            raise ValueError(f"precision must be an int from 0 to 9, got {precision!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, not {_type_name(callback)}")
        self.key = None if key is None else encode_header_name(key)
        self.precision = precision
        self.server_timing = bool(server_timing)
        self.callback = callback
        self.starts = self.key is not None or self.server_timing
        self.timed = True
        self.publishes = True
        self._freeze()

    def enter(self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, index: int) -> int:
        published, states = ex._published, ex._states
        assert published is not None and states is not None  # set by the engine for the request
        states[index] = published._timing  # the outer one, back in place on leave
        published._timing = ex
        return 0

    def start(self, ex: SendRecorder, state: object, message: dict[str, Any], headers: RawHeaders) -> int:
        elapsed = ex._t_responding - ex.t_start
        if self.key is not None:
            header_set(headers, self.key, _format_fixed(elapsed, self.precision))
        if self.server_timing:
            entry = SERVER_TIMING_PREFIX + _format_fixed(elapsed * 1000.0, max(self.precision - 3, 0))
            existing = header_get(headers, SERVER_TIMING)
            header_set(headers, SERVER_TIMING, existing + b", " + entry if existing else entry)
        return 0

    def leave(
        self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, state: object, exc: BaseException | None
    ) -> BaseException | None:
        published = ex._published
        assert published is not None
        published._timing = cast("SendRecorder | None", state)
        if self.callback is not None:
            ttfb = ex.t_first_byte - ex.t_start if ex.t_first_byte else None
            end = ex.t_last_byte or monotonic()
            try:
                self.callback(scope, ttfb, end - ex.t_start)
            except Exception:
                _timing_logger.exception("timing callback %r failed", self.callback)
        return exc


def format_fixed(value: float, precision: int) -> bytes:
    """``value`` with ``precision`` (0-9) decimals, rounded half up: ``b"0.0123"``.

    Values outside [0, 9e18 / 10**precision) are formatted like ``b"%.*f"``."""
    if type(precision) is not int or not 0 <= precision <= 9:
        raise ValueError(f"precision must be an int from 0 to 9, got {precision!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"value must be an int or a float, not {_type_name(value)}")
    return _format_fixed(float(value), precision)


def _format_fixed(value: float, precision: int) -> bytes:
    """``format_fixed`` for a float and a precision the caller checked."""
    scaled = value * POW10[precision]
    if not (0.0 <= scaled < 9e18):
        return b"%.*f" % (precision, value)
    digits = math.floor(scaled + 0.5)
    if not precision:
        return b"%d" % digits
    whole, fraction = divmod(digits, 10**precision)
    return b"%d.%0*d" % (whole, precision, fraction)


# --------------------------------------------------------------------------- body cache


class BodyCacheStage(Stage):
    """Keeps up to ``max_bytes`` of the request body as the app reads it (http only)."""

    def __init__(self, max_bytes: int, *, paths: PathFilter | None = None) -> None:
        Stage.__init__(self, paths=paths)
        if type(max_bytes) is not int or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        self.body_limit = max_bytes
        self.http_only = True
        self.wraps_receive = True
        self.publishes = True
        self._freeze()

    @property
    def max_bytes(self) -> int:
        """The most body bytes kept per request."""
        return self.body_limit

    def enter(self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, index: int) -> int:
        published, states = ex._published, ex._states
        assert published is not None and states is not None  # set by the engine for the request
        token = published._body
        published._body = rx
        state = scope.get("state")
        if isinstance(state, dict):
            state[BODY_STATE_KEY] = rx
            states[index] = (token, state)
        else:
            states[index] = (token, None)
        return 0

    def leave(
        self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, state: object, exc: BaseException | None
    ) -> BaseException | None:
        outer, scope_state = cast(BodyState, state)
        published = ex._published
        assert published is not None
        published._body = outer
        if scope_state is not None:
            scope_state.pop(BODY_STATE_KEY, None)
        assert rx is not None
        rx.release()
        return exc
