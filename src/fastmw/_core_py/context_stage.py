"""The request-context stage: the context plugins' values for the whole request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import Token
from typing import Any, cast

from fastmw._core_py._common import _MISSING, RawHeaders, _type_name
from fastmw._core_py.engine import Stage
from fastmw._core_py.headers import encode_header_value, header_set
from fastmw._core_py.readers import _echo_pair, _reader_pair
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder
from fastmw._core_py.stages import ID_SCOPE_KEY
from fastmw._storage import CORRELATION_ID, REQUEST_CONTEXT
from fastmw.errors import MiddleWareValidationError
from fastmw.types import PathFilter, Receive, Scope, Send

# The most echo entries one context stage takes.
MAX_ECHO = 64
# The app answering a refused request: refuse(scope, receive, send, exc).
Refuse = Callable[[Scope, Receive, Send, BaseException], Awaitable[None]]
# Per request: the context's token, the request id's token (when this stage resolved it),
# whether it echoes the request id, and the context it set.
ContextState = tuple[Token[dict[Any, Any]], Token[str | None] | None, bool, dict[Any, Any]]


class ContextStage(Stage):
    """The request context: ``{key: reader(headers)}`` set for the whole request.

    ``readers`` are ``(key, reader)`` pairs; a reader raising ``MiddleWareValidationError``
    hands the request to ``refuse(scope, receive, send, exc)``. With ``source``, the context
    starts as the dict ``source(scope)`` returns (values a Python layer awaited before the
    engine ran), and the readers' values are stored into it. For each ``(key, header
    name)`` of ``echo`` the value this stage's context holds when the response starts
    (``str()`` of it; None and values that cannot be a header are skipped; read then, as
    starlette-context does, so a value the app stored is echoed) goes on it, appended or,
    with ``replace``, set.
    The reader at ``request_id`` (an index, or -1) reads the request id: it reuses an id an
    outer component resolved, and otherwise decides it for the components inside. The
    context is reset when the app returns, and left set when it raises.
    """

    def __init__(
        self,
        readers: Iterable[Any],
        echo: Iterable[Any] = (),
        *,
        replace: bool = False,
        refuse: Any = None,
        request_id: int = -1,
        source: Any = None,
        paths: PathFilter | None = None,
    ) -> None:
        Stage.__init__(self, paths=paths)
        self.readers = tuple([_reader_pair(pair) for pair in readers])
        self.echo = tuple([_echo_pair(pair) for pair in echo])
        self.replace = bool(replace)
        if refuse is not None and not callable(refuse):
            raise TypeError(f"refuse must be callable or None, not {_type_name(refuse)}")
        if source is not None and not callable(source):
            raise TypeError(f"source must be callable or None, not {_type_name(source)}")
        if type(request_id) is not int or not -1 <= request_id < len(self.readers):
            raise ValueError("request_id must be -1 or the index of a reader")
        if len(self.echo) > MAX_ECHO:
            raise ValueError(f"at most {MAX_ECHO} echo entries, got {len(self.echo)}")
        self.refuse = refuse
        self.request_id = request_id
        self.source = source
        self.starts = bool(self.echo)
        self._freeze()

    def enter(self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, index: int) -> int:
        data: dict[Any, Any] = {}
        if self.source is not None:
            data = self.source(scope)
            if type(data) is not dict:
                raise TypeError(f"source must return a dict, not {_type_name(data)}")
        owned = None
        headers = scope.get("headers") or ()
        request_id = self.request_id
        try:
            for position, (key, reader) in enumerate(self.readers):
                if position == request_id:
                    found = scope.get(ID_SCOPE_KEY, _MISSING) if type(scope) is dict else _MISSING
                    if found is not _MISSING:
                        value = found
                    else:
                        value = reader(headers)
                        if type(value) is str:
                            owned = value
                else:
                    value = reader(headers)
                data[key] = value
        except MiddleWareValidationError as exc:
            if self.refuse is None:
                raise
            ex._refusal = _Refusal(self.refuse, exc)
            return 1
        id_token = None
        if owned is not None:
            scope[ID_SCOPE_KEY] = owned
            id_token = CORRELATION_ID.set(owned)
        # (context token, request id token, echo the request id?, the context); the compiled
        # twin also keeps the header bytes it read, to echo them as they came.
        states = ex._states
        assert states is not None  # set by the engine for the request
        states[index] = (REQUEST_CONTEXT.set(data), id_token, owned is not None or request_id < 0, data)
        return 0

    def start(self, ex: SendRecorder, state: object, message: dict[str, Any], headers: RawHeaders) -> int:
        # The context this stage set, as the app left it (values it stored are echoed).
        _, _, with_request_id, data = cast(ContextState, state)
        request_key = self.readers[self.request_id][0] if self.request_id >= 0 else _MISSING
        for key, name in self.echo:
            if not with_request_id and key == request_key:
                continue  # the component that resolved the id echoes it
            value = data.get(key)
            if value is None:
                continue
            try:
                raw = encode_header_value(value if type(value) is str else str(value))
            except ValueError:
                continue
            if self.replace:
                header_set(headers, name, raw)
            else:
                headers.append((name, raw))
        return 0

    def leave(
        self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, state: object, exc: BaseException | None
    ) -> BaseException | None:
        # Like starlette-context, an exception leaves the context readable by outer handlers.
        if exc is None:
            tokens = cast(ContextState, state)
            REQUEST_CONTEXT.reset(tokens[0])
            id_token = tokens[1]
            if id_token is not None:
                CORRELATION_ID.reset(id_token)
        return exc


class _Refusal:
    """The ASGI app answering a request a context reader refused."""

    __slots__ = ("exc", "refuse")

    def __init__(self, refuse: Refuse, exc: BaseException) -> None:
        self.refuse = refuse
        self.exc = exc

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return self.refuse(scope, receive, send, self.exc)
