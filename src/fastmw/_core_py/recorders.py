"""Send/receive wrapping: the recorders that watch a response and a request body."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from fastmw._core_py._common import (
    RECEIVE_AFTER_END,
    RESPONSE_BODY_TYPES,
    RESPONSE_START_TYPES,
    SEND_AFTER_END,
    RawHeaders,
    _type_name,
)
from fastmw._core_py.headers import _entry, _owned_headers, message_headers
from fastmw._core_py.ids import monotonic
from fastmw.types import ASGIApp, Message, Receive, Send

if TYPE_CHECKING:
    from fastmw._core_py.engine import Published, Stage

# --------------------------------------------------------------------------- send / receive wrapping


class SendRecorder:
    """Wraps an ASGI ``send``: records the response as it passes, never buffers it.

    Inside the engine it is the request's one wrapped ``send``: on the response start
    (``http.response.start``, ``websocket.accept``) it runs the start steps of the
    stages that take part, inner to outer, on a copy of the message's header list.

    ``t_start``, ``t_first_byte`` and ``t_last_byte`` are ``monotonic()`` times (0.0 until
    recorded). A recorder the engine makes for a request records them only when one of the
    request's stages reads them (timing, access log, metrics); otherwise they stay 0.0 and
    the request never reads the clock.
    """

    __slots__ = (
        "_edit_status",
        "_edits",
        "_entered",
        "_finished",
        "_live",
        "_published",
        "_refusal",
        "_stages",
        "_states",
        "_t_responding",
        "_timed",
        "accepted",
        "body_bytes",
        "close_code",
        "complete",
        "headers",
        "send",
        "started",
        "status",
        "t_first_byte",
        "t_last_byte",
        "t_start",
    )

    def __init__(self, send: Send) -> None:
        self._init(send, True)

    def _init(self, send: Send, timed: bool) -> None:
        self.send = send
        # Whether this recorder reads the clock (see the class docstring).
        self._timed = timed
        self.started = False
        self.complete = False
        self.accepted = False
        self.status: int | None = None
        self.headers: RawHeaders | None = None
        self.close_code: int | None = None
        self.body_bytes = 0
        self.t_start = monotonic() if timed else 0.0
        self.t_first_byte = 0.0
        self.t_last_byte = 0.0
        # The clock at the response start, read once before the stages' start steps (the
        # timing header) and kept as t_first_byte once it is sent on.
        self._t_responding = 0.0
        # Engine state for one request: the plan's stages and their per-request states;
        # stages [0, _live) get the response start, [0, _entered) were entered.
        self._stages: tuple[Stage, ...] = ()
        self._states: list[object] | None = None
        self._live = 0
        self._entered = 0
        self._edits = False
        # The plan's edit_status: a start whose status is below it has nothing to edit.
        self._edit_status = 0
        # Set by the engine when the request's pipeline finished: the state above is gone.
        self._finished = False
        self._refusal: ASGIApp | None = None
        # The request's Published holder when this pipeline's stages publish, else None.
        self._published: Published | None = None

    def _apply(self, message: dict[str, Any], status: object) -> RawHeaders:
        # A status that is an int (exactly), else -1: what a stage's start_status is compared with.
        code = status if type(status) is int else -1
        if not self._edits or (self._edit_status > 0 and code < self._edit_status):
            return message_headers(message)
        headers = _owned_headers(message)
        # A malformed entry is refused here, at the innermost layer, before anything is sent.
        for entry in headers:
            _entry(entry)
        stages = self._stages
        states = self._states
        assert states is not None
        for i in range(self._live - 1, -1, -1):
            stage = stages[i]
            if stage.starts and (stage.start_status <= 0 or code >= stage.start_status):
                stage.start(self, states[i], message, headers)
        return headers

    def __call__(self, message: Message) -> Awaitable[None]:
        if self._finished:
            raise RuntimeError(SEND_AFTER_END)
        # Typed as any ASGI ``send`` takes; only a dict is a message on the wire.
        if not isinstance(message, dict):
            raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
        kind = dict.get(message, "type")
        if kind in RESPONSE_BODY_TYPES:
            body = dict.get(message, "body", b"")
            if not isinstance(body, (bytes, bytearray)):
                raise TypeError(f"{kind} 'body' must be bytes, not {_type_name(body)}")
            self.body_bytes += len(body)
            if not dict.get(message, "more_body", False):
                self.complete = True
                if self._timed:
                    self.t_last_byte = monotonic()
        elif kind in RESPONSE_START_TYPES:
            if self.started:
                raise RuntimeError(f"{kind} was already sent for this request")
            status = dict.get(message, "status")
            if not isinstance(status, int):
                raise TypeError(f"{kind} 'status' must be an int, not {_type_name(status)}")
            if self._timed:
                self._t_responding = monotonic()
            self.headers = self._apply(message, status)
            self.status = status
            self.started = True
            self.t_first_byte = self._t_responding
        elif kind == "websocket.accept":
            if self._timed:
                self._t_responding = monotonic()
            self.headers = self._apply(message, None)
            self.accepted = True
            self.t_first_byte = self._t_responding
        elif kind == "websocket.close":
            self.close_code = dict.get(message, "code", 1000)
            if self._timed:
                self.t_last_byte = monotonic()
        return self.send(message)


class ReceiveRecorder:
    """Wraps an ASGI ``receive``: counts request body bytes, notes disconnects,
    and keeps a copy of the body up to ``body_limit`` bytes without consuming it.

    ``disconnected``: the app was told the client went away before its response was
    complete (inside the engine, the request's ``SendRecorder`` says when that is; a
    disconnect after the last body byte is how servers end a finished request)."""

    __slots__ = (
        "_copy",
        "_finished",
        "_response",
        "body_bytes",
        "body_limit",
        "body_truncated",
        "disconnected",
        "receive",
    )

    def __init__(self, receive: Receive, body_limit: int = 0) -> None:
        if type(body_limit) is not int or body_limit < 0:
            raise ValueError("body_limit must be a non-negative int")
        self.receive = receive
        self.body_limit = body_limit
        self.body_bytes = 0
        self.body_truncated = False
        self.disconnected = False
        self._copy = bytearray()
        # Set by the engine when the request's pipeline finished.
        self._finished = False
        # The same request's SendRecorder, set by the engine (None when used alone).
        self._response: SendRecorder | None = None

    @property
    def body(self) -> bytes:
        """The copy of the request body read so far (at most ``body_limit`` bytes)."""
        return bytes(self._copy)

    def release(self) -> None:
        """Drop the body copy."""
        self._copy = bytearray()

    async def __call__(self) -> Message:
        if self._finished:
            raise RuntimeError(RECEIVE_AFTER_END)
        message = await self.receive()
        kind = message.get("type")
        if kind == "http.request":
            body = message.get("body", b"")
            size = len(body)
            self.body_bytes += size
            room = self.body_limit - len(self._copy)
            if size > room:
                self.body_truncated = True
                size = room
            if size > 0:
                self._copy += body[:size]
        elif kind == "http.disconnect" or kind == "websocket.disconnect":
            if self._response is None or not self._response.complete:
                self.disconnected = True
        return message
