# The request engine: one compiled coroutine per request runs a list of stages.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.
#
# A stage is a core object configured once (stages.pxi, access.pxi); per request the
# engine calls its C steps: ``enter`` outer -> inner before the app, ``start`` inner ->
# outer on the response start (from the SendRecorder), ``leave`` inner -> outer when
# the app is done. A stage that ``catches`` may answer an exception (``answer``).


cdef inline object _scope_get(scope, str key, default):
    """``scope.get(key, default)``, a dict lookup for the dict servers send."""
    cdef PyObject* found
    if type(scope) is dict:
        found = PyDict_GetItemWithError(<dict>scope, key)
        return <object>found if found != NULL else default
    return scope.get(key, default)


cdef class Stage:
    """A unit of middleware work the engine runs; configured once, reused by every request."""

    # The path filter (``PathFilter``), or None when the stage applies everywhere.
    cdef readonly object paths
    cdef readonly bint http_only, starts, catches, wraps_receive, publishes
    # The stage reads the request's times (the SendRecorder's t_start, t_first_byte,
    # t_last_byte): only a request with such a stage reads the clock.
    cdef readonly bint timed
    cdef readonly Py_ssize_t body_limit
    # A stage that starts edits every response start (0), or only those whose status is an
    # int (exactly) of at least this: the others skip its start step (and, when no stage is
    # left to edit, the copy of the header list).
    cdef readonly Py_ssize_t start_status

    def __init__(self, *, paths=None):
        if paths is not None and not callable(getattr(paths, "applies", None)):
            raise TypeError(f"paths must have an applies(scope) method, not {_type_name(paths)}")
        self.paths = None if paths is None or getattr(paths, "everything", False) else paths

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        """Store this request's state in ``ex._states[index]``; return 1 to refuse
        (with ``ex._refusal`` set to the ASGI app that answers instead)."""
        return 0

    cdef int start(self, SendRecorder ex, state, dict message, list headers) except -1:
        return 0

    cdef object leave(self, SendRecorder ex, ReceiveRecorder rx, scope, state, exc):
        """Return the exception that propagates past this stage (``exc`` unless replaced)."""
        return exc

    cdef bint drops_failure(self, exc) except -1:
        """``exc``, an Exception, was raised by this stage's ``leave``: report it and return
        True to drop it (the request's own outcome stands), or False to let it propagate."""
        return False

    async def answer(self, scope, receive, send, exc):
        """Answer ``exc`` (stages that catch); True when it propagates."""
        return True


@cython.final
@cython.freelist(16)
cdef class Published:
    """What the current request's stages make readable anywhere inside it: its timing
    recorder (``current_timing()``), body recorder (``current_body()``) and trace
    (``current_trace()``). One holder per request, in one context variable
    (``fastmw._storage.REQUEST_STATE``): setting a context variable is the dearest step of
    a request, so the stages that publish share one."""

    cdef readonly object timing, body, trace

    def __init__(self, timing=None, body=None, trace=None):
        self.timing = timing
        self.body = body
        self.trace = trace


cdef inline object _var_value(var):
    """``var.get()`` for a context variable whose default is None."""
    cdef PyObject* value = NULL
    PyContextVar_Get(var, NULL, &value)
    if value == NULL:
        return None
    result = <object>value
    Py_XDECREF(value)
    return result


cdef inline object _published_now():
    """The current request's Published holder (either twin's), or None."""
    return _var_value(_state_var)


cdef inline object _published_of(SendRecorder ex):
    """What is published for the request ``ex`` records: its own pipeline's holder, or the current one."""
    return ex._published if ex._published is not None else _published_now()


cdef object _published_trace(SendRecorder ex):
    """The trace current for the request ``ex`` records, or None."""
    published = _published_of(ex)
    return None if published is None else published.trace


cpdef object current_timing():
    """The ``SendRecorder`` of the current request's timing stage, or None."""
    published = _published_now()
    return None if published is None else published.timing


cpdef object current_body():
    """The ``ReceiveRecorder`` of the current request's body-cache stage, or None."""
    published = _published_now()
    return None if published is None else published.body


cpdef object current_trace():
    """The current request's ``TraceContext``, or None."""
    published = _published_now()
    return None if published is None else published.trace


@cython.final
cdef class _Plan:
    """The stages that take part in one kind of request, and what the request needs."""

    cdef tuple stages
    cdef Py_ssize_t size, body_limit
    cdef bint wraps_receive, edits, publishes, timed
    # The least start_status of the stages that start (0: some stage edits every start), and
    # whether any of them has one (only then is a start's status read for them).
    cdef Py_ssize_t edit_status
    cdef bint gated

    def __init__(self, stages):
        cdef Stage stage
        self.stages = tuple(stages)
        self.size = len(self.stages)
        self.body_limit = 0
        self.wraps_receive = False
        self.edits = False
        self.edit_status = 0
        self.gated = False
        self.publishes = False
        self.timed = False
        for stage in self.stages:
            self.wraps_receive = self.wraps_receive or stage.wraps_receive
            self.timed = self.timed or stage.timed
            if stage.starts:
                self.edit_status = stage.start_status if not self.edits else min(self.edit_status, stage.start_status)
                self.edits = True
                self.gated = self.gated or stage.start_status > 0
            self.publishes = self.publishes or stage.publishes
            if stage.body_limit > self.body_limit:
                self.body_limit = stage.body_limit


cdef _Plan _plan_or_none(stages):
    return _Plan(stages) if stages else None


cdef class Pipeline:
    """An ASGI app running ``stages`` (outermost first) around ``app`` in one coroutine.

    ``http`` requests get every stage, ``websocket`` requests the stages that are not
    ``http_only``; a stage whose ``paths`` do not match the request's path is left out
    of it. Other scopes (lifespan, unknown types) go to ``other`` (default: ``app``).
    ``terminal`` is the app the stages run around.
    """

    cdef readonly object terminal
    cdef readonly tuple stages
    cdef readonly object other
    cdef _Plan _http, _websocket
    cdef bint _filtered
    # Plans for the subsets of stages that path filters leave, by bitmask of taking part.
    cdef dict _subplans

    def __init__(self, app, stages=(), other=None):
        self.configure(app, stages, other)

    def configure(self, app, stages=(), other=None):
        """Set the app, the stages and the app for other scopes (construction time only)."""
        cdef Stage stage
        stages = tuple(stages)
        for item in stages:
            if not isinstance(item, Stage):
                raise TypeError(f"stages must be core stages, not {_type_name(item)}")
        if len(stages) > MAX_STAGES:
            raise ValueError(f"at most {MAX_STAGES} stages, got {len(stages)}")
        self.terminal = app
        self.stages = stages
        self.other = app if other is None else other
        self._http = _plan_or_none(stages)
        self._websocket = _plan_or_none([stage for stage in stages if not stage.http_only])
        self._filtered = any(stage.paths is not None for stage in stages)
        self._subplans = {}

    cdef _Plan _select(self, _Plan plan, scope):
        """The plan of the stages whose path filter takes this request."""
        cdef Stage stage
        cdef unsigned long long mask = 0, bit = 1
        for stage in plan.stages:
            if stage.paths is None or stage.paths.applies(scope):
                mask |= bit
            bit <<= 1
        key = (mask, plan is self._http)
        found = self._subplans.get(key, _MISSING)
        if found is not _MISSING:
            return <_Plan>found
        chosen = [stage for index, stage in enumerate(plan.stages) if mask >> index & 1]
        result = self._subplans[key] = _plan_or_none(chosen)
        return result

    def __call__(self, scope, receive, send):
        return run_pipeline(self, scope, receive, send)


async def _cython_coroutine():
    pass


_probe = _cython_coroutine()
cdef type _CYTHON_COROUTINE = type(_probe)
_probe.close()
del _probe


cdef inline object _awaitable(result):
    """What the engine awaits for an app's ``result``: a coroutine itself; anything else
    through the interpreter's own ``await`` (fastmw._await), whose errors are the pure twin's."""
    if PyCoro_CheckExact(result) or type(result) is _CYTHON_COROUTINE:
        return result
    return _interpreter_await(result)


async def run_pipeline(Pipeline self, scope, receive, send):
    """``pipeline(scope, receive, send)``: one request through the pipeline's stages.

    A plain ``async def`` (servers see a coroutine function); a middleware class
    subclassing ``Pipeline`` uses it as its ``__call__``."""
    cdef _Plan plan
    cdef SendRecorder ex
    cdef ReceiveRecorder rx = None
    cdef Stage stage
    cdef Py_ssize_t i
    cdef Published published
    kind = scope["type"]
    # Servers send the interned literals: the identity check usually decides.
    if kind is SCOPE_HTTP or kind == SCOPE_HTTP:
        plan = self._http
    elif kind == SCOPE_WEBSOCKET:
        plan = self._websocket
    else:
        await _awaitable(self.other(scope, receive, send))
        return
    if self._filtered and plan is not None:
        plan = self._select(plan, scope)
    if plan is None:
        await _awaitable(self.terminal(scope, receive, send))
        return
    ex = SendRecorder.__new__(SendRecorder)
    _recorder_init(ex, send, plan.timed)
    ex._stages = plan.stages
    # Held here too: the unwind below reads it after Python code ran (the recorder's copy
    # is dropped at the end). Its size is plan.size and never changes.
    cdef list states = [None] * plan.size
    ex._states = states
    ex._edits = plan.edits
    ex._edit_status = plan.edit_status
    ex._gated = plan.gated
    if plan.wraps_receive:
        rx = ReceiveRecorder.__new__(ReceiveRecorder)
        _receiver_init(rx, receive, plan.body_limit)
        rx._response = ex
        receive = rx
    token = None
    if plan.publishes:
        # One holder per request for what its stages publish, the outer request's values
        # inherited (a pipeline nested in another sees what the outer one published).
        published = Published.__new__(Published)
        outer = _published_now()
        if type(outer) is Published:
            published.timing = (<Published>outer).timing
            published.body = (<Published>outer).body
            published.trace = (<Published>outer).trace
        elif outer is not None:
            published.timing = outer.timing
            published.body = outer.body
            published.trace = outer.trace
        ex._published = published
        token = PyContextVar_Set(_state_var, published)
    exc = None
    try:
        if _enter_all(plan, ex, rx, scope):
            await ex._refusal(scope, receive, ex)
        else:
            # _awaitable, inline on the one path every request takes.
            result = self.terminal(scope, receive, ex)
            if not (PyCoro_CheckExact(result) or type(result) is _CYTHON_COROUTINE):
                result = _interpreter_await(result)
            await result
    except BaseException as raised:
        exc = raised
    # Unwind inner -> outer, as the except/finally blocks of nested layers would.
    i = ex._entered - 1
    while i >= 0:
        stage = <Stage>PyTuple_GET_ITEM(plan.stages, i)
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
            exc = stage.leave(ex, rx, scope, <object>PyList_GET_ITEM(states, i), exc)
        except BaseException as raised:
            exc = _leave_failed(stage, raised, exc)
        i -= 1
    if token is not None:
        PyContextVar_Reset(_state_var, token)
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


cdef object _leave_failed(Stage stage, raised, exc):
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


cdef inline object _chained(raised, exc):
    if exc is not None and raised is not exc and raised.__context__ is None:
        raised.__context__ = exc
    return raised


cdef int _enter_all(_Plan plan, SendRecorder ex, ReceiveRecorder rx, scope) except -1:
    """Enter the stages outer -> inner; 1 when one refused (the others are not entered)."""
    cdef Py_ssize_t i
    cdef Stage stage
    for i in range(plan.size):
        stage = <Stage>PyTuple_GET_ITEM(plan.stages, i)
        ex._live = i
        if stage.enter(ex, rx, scope, i):
            return 1
        ex._entered = i + 1
    ex._live = plan.size
    return 0
