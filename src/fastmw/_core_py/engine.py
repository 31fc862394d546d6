"""The request engine: one coroutine per request runs a list of stages.

A stage is a core object configured once (``stages``, ``access``); per request the
engine calls its steps: ``enter`` outer -> inner before the app, ``start`` inner ->
outer on the response start (from the SendRecorder), ``leave`` inner -> outer when
the app is done. A stage that ``catches`` may answer an exception (``answer``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

from fastmw._core_py._common import _MISSING, RawHeaders, _type_name
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder
from fastmw._storage import REQUEST_STATE
from fastmw.types import ASGIApp, PathFilter, Receive, Scope, Send

if TYPE_CHECKING:
    from fastmw._core_py.trace_context import TraceContext

# The most stages one pipeline runs (path filters pick them with a 64-bit mask).
MAX_STAGES = 64


class Stage:
    """A unit of middleware work the engine runs; configured once, reused by every request."""

    _frozen = False

    paths: PathFilter | None

    def __setattr__(self, name: str, value: object) -> None:
        # Configuration is read-only once built, as the compiled twin's (cdef readonly) is.
        if self._frozen:
            cls = type(self)
            raise AttributeError(f"attribute '{name}' of '{cls.__module__}.{cls.__qualname__}' objects is not writable")
        object.__setattr__(self, name, value)

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)

    def __init__(self, *, paths: PathFilter | None = None) -> None:
        if paths is not None and not callable(getattr(paths, "applies", None)):
            raise TypeError(f"paths must have an applies(scope) method, not {_type_name(paths)}")
        self.paths = None if paths is None or getattr(paths, "everything", False) else paths
        self.http_only = False
        self.starts = False
        self.catches = False
        self.wraps_receive = False
        self.publishes = False
        # The stage reads the request's times (the SendRecorder's t_start, t_first_byte,
        # t_last_byte): only a request with such a stage reads the clock.
        self.timed = False
        self.body_limit = 0
        # A stage that starts edits every response start (0), or only those whose status is
        # an int (exactly) of at least this: the others skip its start step (and, when no
        # stage is left to edit, the copy of the header list).
        self.start_status = 0
        if type(self) is Stage:
            self._freeze()

    def enter(self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, index: int) -> int:
        """Store this request's state in ``ex._states[index]``; return 1 to refuse
        (with ``ex._refusal`` set to the ASGI app that answers instead)."""
        return 0

    def start(self, ex: SendRecorder, state: object, message: dict[str, Any], headers: RawHeaders) -> int:
        """Edit the response start's ``headers`` (a stage that ``starts``); ``state`` is what
        ``enter`` stored for this request."""
        return 0

    def leave(
        self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, state: object, exc: BaseException | None
    ) -> BaseException | None:
        """Return the exception that propagates past this stage (``exc`` unless replaced)."""
        return exc

    def drops_failure(self, exc: Exception) -> bool:
        """``exc``, an Exception, was raised by this stage's ``leave``: report it and return
        True to drop it (the request's own outcome stands), or False to let it propagate."""
        return False

    async def answer(self, scope: Scope, receive: Receive, send: Send, exc: BaseException) -> bool:
        """Answer ``exc`` (stages that catch); True when it propagates."""
        return True


class Published:
    """What the current request's stages make readable anywhere inside it: its timing
    recorder (``current_timing()``), body recorder (``current_body()``) and trace
    (``current_trace()``). One holder per request, in one context variable
    (``fastmw._storage.REQUEST_STATE``): setting a context variable is the dearest step of
    a request, so the stages that publish share one."""

    __slots__ = ("_body", "_timing", "_trace")

    def __init__(
        self, timing: SendRecorder | None = None, body: ReceiveRecorder | None = None, trace: TraceContext | None = None
    ) -> None:
        self._timing = timing
        self._body = body
        self._trace = trace

    @property
    def timing(self) -> SendRecorder | None:
        return self._timing

    @property
    def body(self) -> ReceiveRecorder | None:
        return self._body

    @property
    def trace(self) -> TraceContext | None:
        return self._trace


def _published_of(ex: SendRecorder) -> Published | None:
    """What is published for the request ``ex`` records: its own pipeline's holder, or the current one."""
    return ex._published if ex._published is not None else REQUEST_STATE.get()


def _published_trace(ex: SendRecorder) -> TraceContext | None:
    """The trace current for the request ``ex`` records, or None."""
    published = _published_of(ex)
    return None if published is None else published.trace


def current_timing() -> SendRecorder | None:
    """The ``SendRecorder`` of the current request's timing stage, or None."""
    published = REQUEST_STATE.get()
    return None if published is None else published.timing


def current_body() -> ReceiveRecorder | None:
    """The ``ReceiveRecorder`` of the current request's body-cache stage, or None."""
    published = REQUEST_STATE.get()
    return None if published is None else published.body


def current_trace() -> TraceContext | None:
    """The current request's ``TraceContext``, or None."""
    published = REQUEST_STATE.get()
    return None if published is None else published.trace


class _Plan:
    """The stages that take part in one kind of request, and what the request needs."""

    __slots__ = ("body_limit", "edit_status", "edits", "publishes", "size", "stages", "timed", "wraps_receive")

    def __init__(self, stages: Iterable[Stage]) -> None:
        self.stages = tuple(stages)
        self.size = len(self.stages)
        self.wraps_receive = any(stage.wraps_receive for stage in self.stages)
        self.edits = any(stage.starts for stage in self.stages)
        # The least start_status of the stages that start (0: some stage edits every start).
        self.edit_status = min((stage.start_status for stage in self.stages if stage.starts), default=0)
        self.publishes = any(stage.publishes for stage in self.stages)
        self.timed = any(stage.timed for stage in self.stages)
        self.body_limit = max((stage.body_limit for stage in self.stages), default=0)


def _plan_or_none(stages: Iterable[Stage]) -> _Plan | None:
    stages = tuple(stages)
    return _Plan(stages) if stages else None


class Pipeline:
    """An ASGI app running ``stages`` (outermost first) around ``app`` in one coroutine.

    ``http`` requests get every stage, ``websocket`` requests the stages that are not
    ``http_only``; a stage whose ``paths`` do not match the request's path is left out
    of it. Other scopes (lifespan, unknown types) go to ``other`` (default: ``app``).
    ``terminal`` is the app the stages run around.
    """

    _terminal: ASGIApp
    _stages: tuple[Stage, ...] = ()
    _other: ASGIApp

    def __init__(self, app: ASGIApp, stages: Iterable[Stage] = (), other: ASGIApp | None = None) -> None:
        self.configure(app, stages, other)

    def configure(self, app: ASGIApp, stages: Iterable[Stage] = (), other: ASGIApp | None = None) -> None:
        """Set the app, the stages and the app for other scopes (construction time only)."""
        stages = tuple(stages)
        for item in stages:
            if not isinstance(item, Stage):
                raise TypeError(f"stages must be core stages, not {_type_name(item)}")
        if len(stages) > MAX_STAGES:
            raise ValueError(f"at most {MAX_STAGES} stages, got {len(stages)}")
        self._terminal = app
        self._stages = stages
        self._other = app if other is None else other
        self._http = _plan_or_none(stages)
        self._websocket = _plan_or_none(stage for stage in stages if not stage.http_only)
        self._filtered = any(stage.paths is not None for stage in stages)
        self._subplans: dict[tuple[int, bool], _Plan | None] = {}

    @property
    def terminal(self) -> ASGIApp:
        """The app the stages run around."""
        return self._terminal

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages, outermost first."""
        return self._stages

    @property
    def other(self) -> ASGIApp:
        """The app lifespan and unknown scopes go to."""
        return self._other

    def _select(self, plan: _Plan, scope: Scope) -> _Plan | None:
        """The plan of the stages whose path filter takes this request."""
        mask = 0
        for index, stage in enumerate(plan.stages):
            if stage.paths is None or stage.paths.applies(scope):
                mask |= 1 << index
        key = (mask, plan is self._http)
        found = self._subplans.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        chosen = [stage for index, stage in enumerate(plan.stages) if mask >> index & 1]
        result = self._subplans[key] = _plan_or_none(chosen)
        return result

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return run_pipeline(self, scope, receive, send)


async def run_pipeline(self: Pipeline, scope: Scope, receive: Receive, send: Send) -> None:
    """``pipeline(scope, receive, send)``: one request through the pipeline's stages.

    A plain ``async def`` (servers see a coroutine function); a middleware class
    subclassing ``Pipeline`` uses it as its ``__call__``."""
    kind = scope["type"]
    if kind == "http":
        plan = self._http
    elif kind == "websocket":
        plan = self._websocket
    else:
        await self._other(scope, receive, send)
        return
    if self._filtered and plan is not None:
        plan = self._select(plan, scope)
    if plan is None:
        await self._terminal(scope, receive, send)
        return
    ex = SendRecorder.__new__(SendRecorder)
    ex._init(send, plan.timed)
    stages = ex._stages = plan.stages
    states = ex._states = [None] * plan.size
    ex._edits = plan.edits
    ex._edit_status = plan.edit_status
    rx = None
    if plan.wraps_receive:
        rx = receive = ReceiveRecorder(receive, plan.body_limit)
        rx._response = ex
    token = None
    if plan.publishes:
        # One holder per request for what its stages publish, the outer request's values
        # inherited (a pipeline nested in another sees what the outer one published).
        outer = REQUEST_STATE.get()
        published = ex._published = Published() if outer is None else Published(outer.timing, outer.body, outer.trace)
        token = REQUEST_STATE.set(published)
    exc: BaseException | None = None
    try:
        if _enter_all(plan, ex, rx, scope):
            # No local for it: a refusal holding the exception would make a frame cycle.
            assert ex._refusal is not None  # set by the stage that refused
            await ex._refusal(scope, receive, ex)
        else:
            await self._terminal(scope, receive, ex)
    except BaseException as raised:
        exc = raised
    # Unwind inner -> outer, as the except/finally blocks of nested layers would.
    for i in range(ex._entered - 1, -1, -1):
        stage = stages[i]
        if stage.catches and exc is not None and isinstance(exc, Exception):
            # What it sends gets only the start steps of the stages outer to it.
            ex._live = i
            try:
                if not await stage.answer(scope, receive, ex, exc):
                    exc = None
            except BaseException as raised:
                # Raised while answering: chained to the original, as in an except block.
                exc = _chained(raised, exc)
        try:
            exc = stage.leave(ex, rx, scope, states[i], exc)
        except BaseException as raised:
            exc = _leave_failed(stage, raised, exc)
    if token is not None:
        REQUEST_STATE.reset(token)
        ex._published = None
    # Past this point the request's state is gone: its recorders refuse further calls.
    ex._finished = True
    ex._states = None
    ex._refusal = None
    if rx is not None:
        rx._finished = True
    if exc is not None:
        try:
            raise exc
        finally:
            # No exception -> traceback -> frame -> exception cycle.
            exc = None


def _leave_failed(stage: Stage, raised: BaseException, exc: BaseException | None) -> BaseException | None:
    """What propagates past ``stage`` when its leave raised ``raised`` while ``exc`` propagated:
    ``exc`` when the stage drops the failure (it has reported it), else ``raised``, as a failing
    finally block replaces the exception (chained to it), in nested layers too."""
    try:
        if isinstance(raised, Exception) and stage.drops_failure(raised):
            return exc
    except BaseException as reporting:
        # Raised while reporting it: chained to the failure, the failure to ``exc``.
        return _chained(reporting, _chained(raised, exc))
    return _chained(raised, exc)


def _chained(raised: BaseException, exc: BaseException | None) -> BaseException:
    if exc is not None and raised is not exc and raised.__context__ is None:
        raised.__context__ = exc
    return raised


def _enter_all(plan: _Plan, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope) -> int:
    """Enter the stages outer -> inner; 1 when one refused (the others are not entered)."""
    for i, stage in enumerate(plan.stages):
        ex._live = i
        if stage.enter(ex, rx, scope, i):
            return 1
        ex._entered = i + 1
    ex._live = plan.size
    return 0
