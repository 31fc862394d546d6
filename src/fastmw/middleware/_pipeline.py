"""Fusion: adjacent fastmw middlewares run as one pipeline (one layer per request).

Every fastmw middleware is a *stage*: sync per-request steps that the shared
engine below (``FusableMiddleware.__call__``) runs in the order nested layers
would. When a fastmw middleware is built around another one (``Outer(app=Inner)``,
which is what a ``Middleware`` list, ``add_middleware`` and direct wrapping all
do) the outer instance takes over the inner one's stages, so a request costs one
coroutine, one ``core.SendRecorder`` and one ``core.ReceiveRecorder`` however
many middlewares there are.

Stage protocol (all sync, all optional; the defaults do nothing):

* ``_stage_enter(scope, recorder, receiver) -> state`` outer -> inner before the
  app runs; returning a ``Refuse`` sends that ASGI app's response instead (through
  the start steps of the stages outer to it only) and skips the inner stages and
  the app, exactly like an unfused layer that does not call its app;
* ``_stage_start(state, recorder, message)`` inner -> outer on the response start
  (``http.response.start``, ``websocket.accept``), called by the one recorder;
* ``_stage_handle(scope, receive, send, exc)`` (async, stages with ``_catches``)
  may answer an exception; it returns True to let it propagate, False to swallow it
  (and raises if answering fails);
* ``_stage_exit(scope, recorder, receiver, state, exc)`` inner -> outer once the
  app (or refusal) is done; ``exc`` is what an unfused layer there would see.

``FASTMW_NO_FUSE=1`` (read once at import) or ``fuse=False`` on a middleware
turns fusion off: each middleware is then its own one-stage layer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastmw._impl import core

__all__ = ["FUSE", "FusableMiddleware", "Refuse", "fused_stages"]

TRUE_VALUES = ("1", "true", "yes", "on")
# Fusion is on unless FASTMW_NO_FUSE says otherwise (read once, like FASTMW_NO_EXTENSIONS).
FUSE = os.environ.get("FASTMW_NO_FUSE", "").strip().lower() not in TRUE_VALUES

SendRecorder = core.SendRecorder
solo_call = core.solo_call
ReceiveRecorder = core.ReceiveRecorder


class Refuse:
    """Returned by ``_stage_enter``: answer with ``app`` instead of running the inner stages."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app


def _run_starts(starts: tuple[tuple[int, Any], ...], states: list[Any], recorder: Any, message: Message) -> None:
    """The one recorder's ``on_start``: the start steps of the entered stages, inner -> outer.

    ``states`` holds one entry per entered stage, so its length is how many stages
    (outermost first) take part: all of them while the app runs, only those outer to
    a stage that sends its own response (a refusal; an error, after ``del states[i:]``).
    """
    limit = len(states)
    for index, start in starts:
        if index < limit:
            start(states[index], recorder, message)


def _always(scope: Scope) -> bool:
    return True


def _own(stage: Any, name: str) -> Any:
    """``stage``'s bound method ``name``, or None when it is the do-nothing default."""
    if getattr(type(stage), name) is getattr(FusableMiddleware, name):
        return None
    return getattr(stage, name)


class _Plan:
    """A request through a given list of active stages: what to wrap and which steps to call."""

    __slots__ = (
        "appliers",
        "body_limit",
        "enters",
        "single_start",
        "stages",
        "starts",
        "subplans",
        "unwind",
        "wrap_receive",
        "wrap_send",
    )

    def __init__(self, stages: Sequence[Any]) -> None:
        self.stages = tuple(stages)
        self.wrap_send = any(stage._wraps_send for stage in stages)
        self.wrap_receive = any(stage._wraps_receive for stage in stages)
        self.body_limit = max((stage._body_limit for stage in stages), default=0)
        # Bound steps resolved once, so a request makes no attribute lookups or no-op calls.
        self.enters = tuple(_own(stage, "_stage_enter") for stage in stages)
        # (index, handle or None, exit step or None), inner -> outer, for stages with either.
        self.unwind = tuple(
            (index, stage._stage_handle if stage._catches else None, _own(stage, "_stage_exit"))
            for index, stage in reversed(list(enumerate(stages)))
            if stage._catches or _own(stage, "_stage_exit") is not None
        )
        # Path filters, and the plans for the subsets of stages they leave active.
        self.appliers = tuple(stage._applies for stage in stages)
        self.subplans: dict[tuple[bool, ...], _Plan | None] = {}
        self.starts = tuple(
            (index, stage._stage_start) for index, stage in reversed(list(enumerate(stages))) if stage._starts
        )
        self.single_start = self.starts[0] if len(self.starts) == 1 else None
        # A start step needs the recorder that calls it.
        self.wrap_send = self.wrap_send or bool(self.starts)


def _plan(stages: Sequence[Any]) -> _Plan | None:
    return _Plan(stages) if stages else None


def fused_stages(app: object) -> tuple[Any, ...]:
    """The stages a fastmw middleware runs in one layer (outermost first); () for anything else."""
    stages = getattr(app, "_stages", None)
    return tuple(stages) if isinstance(app, FusableMiddleware) and stages is not None else ()


class FusableMiddleware:
    """Base of the fastmw middlewares: a stage, and the engine running a fused pipeline."""

    # Stage traits; subclasses (or instances) override.
    _wraps_send = True
    _wraps_receive = False
    _body_limit = 0
    _keeps_body = False
    _starts = False
    _catches = False
    _http_only = False

    _app: ASGIApp
    _stages: tuple[Any, ...] | None = None
    # A core runner for the whole request when this stage runs alone (``_solo_runner``);
    # a stage that has one sets ``__call__ = core.solo_call``, which awaits it directly.
    _solo: Any = None
    _terminal: ASGIApp
    fuse: bool = True
    _built = False

    # ------------------------------------------------------------------ construction

    @property
    def app(self) -> ASGIApp:
        """The wrapped application (the next layer as it was given)."""
        return self._app

    @app.setter
    def app(self, value: ASGIApp) -> None:
        self._app = value
        # Not self.__dict__: touching it makes every attribute lookup slower (no inline values).
        if self._built:
            self._fuse_build()

    def _fuse_init(self, fuse: bool) -> None:
        """Call at the end of ``__init__``, once the options are validated."""
        self.fuse = bool(fuse)
        self._fuse_build()

    def _fusable(self) -> bool:
        """Whether this instance can run as a stage at all (else it is a plain layer)."""
        return True

    def _can_join(self, outer: FusableMiddleware) -> bool:
        """Whether ``outer`` may take over this instance's stages."""
        stages = self._stages
        if not (FUSE and self.fuse and outer.fuse and stages is not None):
            return False
        # A subclass with its own __call__ runs as a layer; core.solo_call is the engine too.
        if type(self).__call__ is not FusableMiddleware.__call__ and type(self).__call__ is not solo_call:
            return False
        # One receive recorder holds one body copy: two body caches stay two layers.
        return not (outer._keeps_body and any(stage._keeps_body for stage in stages))

    def _fuse_build(self) -> None:
        self._built = True
        inner = self._app
        self._solo = None
        if not self._fusable():
            self._stages = None
            self._terminal = inner
            self._http = self._ws = None
            self._filtered = False
            self._other_app = None
            return
        if FUSE and isinstance(inner, FusableMiddleware) and inner._can_join(self):
            assert inner._stages is not None
            self._stages = (self, *inner._stages)
            self._terminal = inner._terminal
        else:
            self._stages = (self,)
            self._terminal = inner
        stages = self._stages
        self._filtered = not all(stage._everything() for stage in stages)
        self._http = _plan(stages)
        self._ws = _plan([stage for stage in stages if not stage._http_only])
        # Lifespan and unknown scopes go straight to the terminal app unless a stage
        # does something with them (the access log flushing its sink).
        passes = all(stage._passes_other() for stage in stages)
        self._other_app = self._terminal if passes else None
        if stages == (self,) and not self._filtered:
            self._solo = self._solo_runner()

    # ------------------------------------------------------------------ stage defaults

    def _everything(self) -> bool:
        """Whether the stage applies to every http/websocket request (no path filter)."""
        paths = getattr(self, "_paths", None)
        return paths is None or bool(paths.everything)

    @property
    def _applies(self) -> Any:
        """``(scope) -> bool``: whether the stage acts on this request's path."""
        paths = getattr(self, "_paths", None)
        return _always if paths is None else paths.applies

    def _solo_runner(self) -> Any:
        """A core object running a whole request of this stage alone, or None.

        ``runner(scope, receive, send)`` returns the awaitable ``core.solo_call`` (the
        stage's ``__call__``) awaits, for every scope type; it must behave exactly like
        the one-stage pipeline. This engine runs only when there is none.
        """
        return None

    def _passes_other(self) -> bool:
        """Whether lifespan/unknown scopes pass through this stage untouched."""
        return True

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan and unknown scopes, as this middleware alone would handle them."""
        await self._app(scope, receive, send)

    async def _unfused_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The whole request when ``_fusable()`` is False."""
        raise NotImplementedError  # pragma: no cover - subclasses that can refuse fusion define it

    def _stage_enter(self, scope: Scope, recorder: Any, receiver: Any) -> Any:
        return None

    def _stage_start(self, state: Any, recorder: Any, message: Message) -> None:
        return None

    async def _stage_handle(self, scope: Scope, receive: Receive, send: Any, exc: BaseException) -> bool:
        """Answer ``exc`` (stages with ``_catches``); True when it propagates."""
        return True

    def _stage_exit(self, scope: Scope, recorder: Any, receiver: Any, state: Any, exc: BaseException | None) -> None:
        return None

    # ------------------------------------------------------------------ the engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            plan = self._http
        elif kind == "websocket":
            plan = self._ws
        else:
            other = self._other_app
            if other is not None:
                await other(scope, receive, send)
            elif self._stages is None:
                await self._unfused_call(scope, receive, send)
            else:
                await self._other(scope, receive, send)
            return
        if plan is None:
            if self._stages is None:
                await self._unfused_call(scope, receive, send)
            else:
                await self._terminal(scope, receive, send)
            return
        if self._filtered:
            # Path filters: a stage that does not apply is skipped, as its layer would pass through.
            key = tuple([applies(scope) for applies in plan.appliers])
            plans = plan.subplans
            if key in plans:
                plan = plans[key]
            else:
                # At most 2**len(stages) plans, each built once.
                plan = plans[key] = _plan([stage for stage, on in zip(plan.stages, key, strict=True) if on])
            if plan is None:
                await self._terminal(scope, receive, send)
                return
        states: list[Any] = []
        recorder: Any = None
        receiver: Any = None
        starts = plan.starts
        if plan.wrap_send:
            recorder = send = SendRecorder(send)  # type: ignore[assignment]
        if plan.wrap_receive:
            receiver = receive = ReceiveRecorder(receive, plan.body_limit)  # type: ignore[arg-type]
        exc: BaseException | None = None
        try:
            for enter in plan.enters:
                if enter is None:
                    states.append(None)
                    continue
                state = enter(scope, recorder, receiver)
                if type(state) is Refuse:
                    # Answered by the stage: only the stages outer to it (those in states) see it.
                    if starts:
                        recorder.on_start = partial(_run_starts, starts, states)
                    await state.app(scope, receive, send)
                    break
                states.append(state)
            else:
                if starts:
                    single = plan.single_start
                    if single is not None:
                        # One start step: called straight from the recorder (no loop frame).
                        recorder.on_start = partial(single[1], states[single[0]])
                    else:
                        recorder.on_start = partial(_run_starts, starts, states)
                await self._terminal(scope, receive, send)
        except BaseException as raised:
            exc = raised
        # Unwind inner -> outer, as the except/finally blocks of nested layers would.
        entered = len(states)
        for index, handle, leave in plan.unwind:
            if index >= entered:
                continue
            state = states[index]
            if handle is not None and exc is not None and isinstance(exc, Exception):
                # What it sends gets only the start steps of the stages outer to it.
                del states[index:]
                if starts:
                    recorder.on_start = partial(_run_starts, starts, states)
                try:
                    if not await handle(scope, receive, send, exc):
                        exc = None
                except BaseException as raised:
                    # Raised while handling: chained to the original, as in an except block.
                    if raised is not exc and raised.__context__ is None:
                        raised.__context__ = exc
                    exc = raised
            if leave is not None:
                try:
                    leave(scope, recorder, receiver, state, exc)
                except BaseException as raised:
                    # A failing finally block replaces the exception, in nested layers too.
                    exc = raised
        if exc is not None:
            try:
                raise exc
            finally:
                # No exception -> traceback -> frame -> exception cycle.
                exc = None
