# The context middleware's runner (replaced by the engine).
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.

cdef extern from *:
    """
    /* vectorcall for the per-request callables, so calling one builds no argument tuple. */
    typedef PyObject* (*fastmw_call1_fn)(PyObject*, PyObject*);
    typedef PyObject* (*fastmw_call3_fn)(PyObject*, PyObject*, PyObject*, PyObject*);
    static fastmw_call1_fn fastmw_call1 = NULL;
    static fastmw_call3_fn fastmw_call3 = NULL;

    /* Irregular arguments: the type's tp_call raises its usual errors (or accepts them). */
    static PyObject* fastmw_vectorcall_fallback(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
        Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0, i;
        PyObject* tuple = PyTuple_New(nargs);
        PyObject* kwargs = NULL;
        PyObject* result = NULL;
        if (tuple == NULL) return NULL;
        for (i = 0; i < nargs; i++) {
            Py_INCREF(args[i]);
            PyTuple_SET_ITEM(tuple, i, args[i]);
        }
        if (nkw) {
            kwargs = PyDict_New();
            if (kwargs == NULL) goto done;
            for (i = 0; i < nkw; i++) {
                if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) goto done;
            }
        }
        result = Py_TYPE(callable)->tp_call(callable, tuple, kwargs);
    done:
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        return result;
    }

    static PyObject* fastmw_vectorcall1(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
        if (PyVectorcall_NARGS(nargsf) == 1 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0))
            return fastmw_call1(callable, args[0]);
        return fastmw_vectorcall_fallback(callable, args, nargsf, kwnames);
    }

    static PyObject* fastmw_vectorcall3(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
        if (PyVectorcall_NARGS(nargsf) == 3 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0))
            return fastmw_call3(callable, args[0], args[1], args[2]);
        return fastmw_vectorcall_fallback(callable, args, nargsf, kwnames);
    }

    typedef PyObject* (*fastmw_call4_fn)(PyObject*, PyObject*, PyObject*, PyObject*, PyObject*);
    static fastmw_call4_fn fastmw_call4 = NULL;

    static PyObject* fastmw_vectorcall4(PyObject* callable, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
        if (PyVectorcall_NARGS(nargsf) == 4 && (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0))
            return fastmw_call4(callable, args[0], args[1], args[2], args[3]);
        return fastmw_vectorcall_fallback(callable, args, nargsf, kwnames);
    }

    /* An object of this type in a class body is called like a function defined there:
       instance.attr(...) and type(instance).__call__ pass the instance first, unbound. */
    static int fastmw_enable_method(PyObject* type, Py_ssize_t offset, void* call4) {
        PyTypeObject* t = (PyTypeObject*)type;
        fastmw_call4 = (fastmw_call4_fn)call4;
        t->tp_vectorcall_offset = offset;
        t->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR;
        PyType_Modified(t);
        return 0;
    }
    #define FASTMW_VECTORCALL4 ((void*)fastmw_vectorcall4)

    static int fastmw_enable_vectorcall(PyObject* type, Py_ssize_t offset, void* call1, void* call3) {
        PyTypeObject* t = (PyTypeObject*)type;
        if (call1 != NULL) fastmw_call1 = (fastmw_call1_fn)call1;
        if (call3 != NULL) fastmw_call3 = (fastmw_call3_fn)call3;
        t->tp_vectorcall_offset = offset;
        t->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
        PyType_Modified(t);
        return 0;
    }
    #define FASTMW_VECTORCALL1 ((void*)fastmw_vectorcall1)
    #define FASTMW_VECTORCALL3 ((void*)fastmw_vectorcall3)
    """
    int fastmw_enable_vectorcall(object type, Py_ssize_t offset, void* call1, void* call3) except -1
    void* FASTMW_VECTORCALL1
    void* FASTMW_VECTORCALL3
    void* FASTMW_VECTORCALL4
    int fastmw_enable_method(object type, Py_ssize_t offset, void* call4) except -1


@cython.final
cdef class ContextRunner:
    """Runs ``app`` with a request context built from the raw request headers.

    ``runner(scope, receive, send)`` returns a coroutine (compiled: an awaitable that
    ``asyncio`` takes as one): nothing runs until it is first stepped, so the context
    is set in the task that awaits it. On ``http`` and ``websocket`` scopes the context
    dict is ``{key: reader(headers)}`` over ``readers`` (``(key, reader)`` pairs, in
    order); a reader raising
    ``MiddleWareValidationError`` hands the request to
    ``refuse(scope, receive, send, exc)`` instead (re-raised without ``refuse``).
    For each ``(key, header name)`` of ``echo`` the context value (``str()`` of it)
    goes on the response start, appended or, with ``replace``, set; a value that
    cannot be a header value is skipped. The context is reset when the app returns
    and left set when it raises, so outer exception handlers can read it. Other
    scopes go to ``app`` untouched.
    """

    cdef void* _vectorcall
    cdef readonly object app
    cdef readonly tuple readers, echo
    cdef readonly bint replace
    cdef readonly object refuse
    # Per echo entry: the index of the UUIDHeaderReader that fills its key (the last
    # reader with that key), below KEPT_READERS, else -1; its header bytes are echoed as is.
    cdef tuple _echo_reader

    def __init__(self, app, readers, echo=(), *, replace=False, refuse=None):
        self._vectorcall = FASTMW_VECTORCALL3
        self.app = app
        self.readers = tuple([_reader_pair(pair) for pair in readers])
        self.echo = tuple([_echo_pair(pair) for pair in echo])
        self.replace = bool(replace)
        if refuse is not None and not callable(refuse):
            raise TypeError(f"refuse must be callable or None, not {_type_name(refuse)}")
        self.refuse = refuse
        self._echo_reader = tuple([_echo_reader(self.readers, pair[0]) for pair in self.echo])

    def __call__(self, scope, receive, send):
        return _runner_call(self, scope, receive, send)


cdef inline _ContextAwait _pending(object runner, scope, receive, send):
    """An awaitable that enters ``runner`` on its first step, like a coroutine would."""
    cdef _ContextAwait waiter = _ContextAwait.__new__(_ContextAwait)
    waiter._runner = runner
    waiter._scope = scope
    waiter._receive = receive
    waiter._send = send
    return waiter


cdef object _runner_call(ContextRunner self, scope, receive, send):
    return _pending(self, scope, receive, send)


cdef HeaderSend _echo_send(ContextRunner self, dict data, PyObject** kept, send):
    """``send`` wrapped to echo the context values named by ``self.echo``."""
    # The echoed entries straight into a tuple (what HeaderSend keeps); a skipped
    # value leaves it one shorter.
    cdef Py_ssize_t echo_count = PyTuple_GET_SIZE(self.echo), filled = 0, position = 0, index
    cdef tuple echoed = PyTuple_New(echo_count)
    cdef tuple pair
    cdef PyObject* found
    for pair in self.echo:
        index = <Py_ssize_t>self._echo_reader[position]
        position += 1
        if index >= 0 and kept[index] != NULL:
            # The header's own bytes, already checked by the reader.
            raw = <object>kept[index]
        else:
            found = PyDict_GetItemWithError(data, pair[0])
            if found == NULL or <object>found is None:
                continue  # nothing to echo (an absent header, a key no reader fills)
            value = <object>found
            try:
                raw = encode_header_value(value if type(value) is str else str(value))
            except ValueError:
                continue
        entry = (pair[1], raw)
        Py_INCREF(entry)
        PyTuple_SET_ITEM(echoed, filled, entry)
        filled += 1
    if filled < echo_count:
        echoed = echoed[:filled]
    cdef HeaderSend wrapper = HeaderSend.__new__(HeaderSend)
    wrapper._vectorcall = FASTMW_VECTORCALL1
    wrapper.send = send
    wrapper.headers = echoed
    wrapper.replace = self.replace
    return wrapper


cdef int _runner_enter(ContextRunner self, _ContextAwait waiter, scope, receive, send) except -1:
    """Build the context and start the app into ``waiter`` (``_target``, ``_token``)."""
    cdef PyObject* found
    if type(scope) is dict:
        found = PyDict_GetItemWithError(scope, "type")
        kind = <object>found if found != NULL else scope["type"]
    else:
        kind = scope["type"]
    if kind != "http" and kind != "websocket":
        waiter._target = _await_target(self.app(scope, receive, send))
        return 0
    if type(scope) is dict:
        found = PyDict_GetItemWithError(scope, "headers")
        headers = <object>found if found != NULL else None
    else:
        headers = scope.get("headers")
    if not headers:
        headers = ()
    cdef dict data = {}
    cdef tuple pair
    cdef PyObject* kept[KEPT_READERS]
    cdef Py_ssize_t index
    memset(kept, 0, sizeof(kept))
    try:
        try:
            index = 0
            for pair in self.readers:
                reader = pair[1]
                if type(reader) is UUIDHeaderReader:
                    value = (<UUIDHeaderReader>reader)._read_keeping(
                        headers, &kept[index] if index < KEPT_READERS else NULL
                    )
                elif type(reader) is HeaderReader:
                    value = (<HeaderReader>reader)._read(headers)
                else:
                    value = reader(headers)
                PyDict_SetItem(data, pair[0], value)
                index += 1
        except MiddleWareValidationError as exc:
            if self.refuse is None:
                raise
            waiter._target = _await_target(self.refuse(scope, receive, send, exc))
            return 0
        if self.echo:
            send = _echo_send(self, data, kept, send)
    finally:
        for index in range(KEPT_READERS):
            Py_XDECREF(kept[index])
    waiter._token = PyContextVar_Set(_context_var, data)
    waiter._target = _await_target(self.app(scope, receive, send))
    return 0


async def _solo_call_signature(self, scope, receive, send):
    # Never called: its code object gives solo_call the signature and the coroutine
    # flag that inspect.iscoroutinefunction and asyncio.iscoroutinefunction look for.
    pass


@cython.final
cdef class _AsyncMethod:
    """An ASGI ``__call__`` for a middleware that may run as one core runner.

    ``solo_call(self, scope, receive, send)`` awaits ``self._solo(scope, receive,
    send)`` when ``self._solo`` is set (a ``ContextRunner``), ``self._layer(scope,
    receive, send)`` otherwise. Compiled, it is a method implemented in C that returns
    a coroutine-like awaitable (an ``asyncio`` coroutine that runs nothing until its
    first step), so a request costs no coroutine frame; it looks like an ``async def``
    to ``inspect`` and ``asyncio``.
    """

    cdef void* _vectorcall

    def __call__(self, middleware, scope, receive, send):
        return _solo_call(self, middleware, scope, receive, send)

    def __get__(self, instance, owner):
        return self if instance is None else _method_new(self, instance)

    @property
    def __code__(self):
        return _solo_call_signature.__code__

    @property
    def __name__(self):
        return "solo_call"

    @property
    def __qualname__(self):
        return "solo_call"

    @property
    def __module__(self):
        return "fastmw._core"

    @property
    def __defaults__(self):
        return None

    @property
    def __kwdefaults__(self):
        return None

    @property
    def __annotations__(self):
        return {}

    def __repr__(self):
        return "<fastmw._core.solo_call>"


cdef object _solo_call(object method, middleware, scope, receive, send):
    runner = middleware._solo
    if runner is None:
        return middleware._layer(scope, receive, send)
    cdef _ContextAwait waiter
    if type(runner) is ContextRunner:
        waiter = _pending(runner, scope, receive, send)
        waiter._from_solo = True
        return waiter
    return _await_solo(runner, scope, receive, send)


async def _await_solo(runner, scope, receive, send):
    await runner(scope, receive, send)


cdef _AsyncMethod _new_solo_call():
    cdef _AsyncMethod method = _AsyncMethod.__new__(_AsyncMethod)
    cdef Py_ssize_t offset = <char*>&method._vectorcall - <char*><PyObject*>method
    fastmw_enable_method(_AsyncMethod, offset, <void*>_solo_call)
    method._vectorcall = FASTMW_VECTORCALL4
    return method


@cython.final
@cython.freelist(16)
cdef class HeaderSend:
    """Wraps an ASGI ``send``: puts ``headers`` on the response start, passes the rest on.

    On the first ``http.response.start``, ``websocket.accept`` or
    ``websocket.http.response.start`` the message gets a copy of its header list
    (the app's may be shared) with each ``(name, value)`` of ``headers``
    appended or, with ``replace``, set (Starlette's ``MutableHeaders`` semantics).
    A second response start raises ``RuntimeError``; nothing is buffered.
    """

    cdef void* _vectorcall
    cdef readonly object send
    cdef readonly tuple headers
    cdef readonly bint replace, started

    def __init__(self, send, headers, *, replace=False):
        self._vectorcall = FASTMW_VECTORCALL1
        self.send = send
        pairs = [_pair(item, "a header") for item in headers]
        self.headers = tuple([(encode_header_name(name), encode_header_value(value)) for name, value in pairs])
        self.replace = bool(replace)
        self.started = False

    def __call__(self, message):
        return _header_send_call(self, message)

    cdef int _apply(self, dict message) except -1:
        cdef list headers
        cdef PyObject* name
        cdef PyObject* value
        cdef Py_ssize_t i
        cdef tuple pair
        if self.replace:
            headers = _owned_headers(message)
        else:
            headers = message_headers(message)
        # A malformed entry is refused here, before anything is sent.
        for i in range(PyList_GET_SIZE(headers)):
            _entry(<object>PyList_GET_ITEM(headers, i), &name, &value)
        if self.replace:
            for pair in self.headers:
                _set(headers, <bytes>pair[0], <bytes>pair[1])
        else:
            # The copy and the appended entries in one allocation.
            PyDict_SetItem(message, "headers", fastmw_list_plus_tuple(headers, self.headers))
        return 0


cdef object _header_send_call(HeaderSend self, message):
    if type(message) is not dict and not isinstance(message, dict):
        raise TypeError(f"ASGI message must be a dict, not {_type_name(message)}")
    cdef PyObject* kind = PyDict_GetItemWithError(message, "type")
    if kind != NULL and _opens_response(<object>kind):
        if self.started:
            raise RuntimeError(f"{<object>kind} was already sent for this request")
        self._apply(<dict>message)
        self.started = True
    return self.send(message)


cdef inline bint _opens_response(kind):
    """Whether a message type is http.response.start, websocket.accept or websocket.http.response.start."""
    if not PyUnicode_CheckExact(kind):
        return False
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(kind)
    # Lengths first: body messages (the common case) never reach a comparison.
    if n == 19:
        return kind == "http.response.start"
    if n == 16:
        return kind == "websocket.accept"
    if n == 29:
        return kind == "websocket.http.response.start"
    return False


cdef int _echo_reader(tuple readers, key) except -2:
    cdef Py_ssize_t index
    for index in range(len(readers) - 1, -1, -1):
        if readers[index][0] == key:
            if index < KEPT_READERS and type(readers[index][1]) is UUIDHeaderReader:
                return index
            return -1
    return -1


cdef tuple _pair(item, str what):
    """``item`` as a 2-tuple; the same TypeError in both twins otherwise."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"{what} must be a pair, not {_type_name(item)} {_shown(repr(item))}")
    return (item[0], item[1])


cdef tuple _reader_pair(pair):
    key, reader = _pair(pair, "a context reader entry")
    if not callable(reader):
        raise TypeError(f"context reader for {key!r} must be callable, not {_type_name(reader)}")
    return key, reader


cdef tuple _echo_pair(pair):
    key, name = _pair(pair, "an echo entry")
    return key, encode_header_name(name)


cdef object _await_target(value):
    """The iterator ``await value`` drives; the same TypeError in both twins otherwise."""
    if PyCoro_CheckExact(value):
        return value
    method = getattr(type(value), "__await__", None)
    if method is not None:
        # What the await expression itself checks.
        target = method(value)
        if PyCoro_CheckExact(target):
            raise TypeError("__await__() returned a coroutine")
        if not PyIter_Check(target):
            raise TypeError(f"__await__() returned non-iterator of type '{_type_name(target)}'")
        return target
    if PyGen_CheckExact(value) and value.gi_code.co_flags & CO_ITERABLE_COROUTINE:
        return value
    raise TypeError(f"the app returned {_type_name(value)}, which cannot be awaited")


@cython.final
@cython.freelist(16)
cdef class _ContextAwait:
    """Awaits the app for ``ContextRunner``; resets the request context when it returns.

    ``await`` drives it through the C slots installed below (no Python frame, no
    StopIteration object for the usual ``None`` result); ``send``/``throw``/``close``
    serve callers that drive it by hand.
    """

    cdef object _target
    cdef object _token
    # Until the first step: what to enter (a ContextRunner) and the request.
    cdef object _runner, _scope, _receive, _send
    # Made by solo_call (else by ContextRunner.__call__): the name in the warning below.
    cdef bint _from_solo

    def __dealloc__(self):
        # As CPython warns for a coroutine that was never awaited. (In __dealloc__, not
        # __del__: a finalizer runs once per memory block, and the freelist reuses blocks.)
        if self._runner is not None:
            name = "solo_call" if self._from_solo else "ContextRunner._run"
            warnings.warn(f"coroutine '{name}' was never awaited", RuntimeWarning, stacklevel=1)

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return self._resume(None)

    def send(self, value):
        return self._resume(value)

    def throw(self, typ, val=None, tb=None):
        if self._target is None:
            # Not started: like a coroutine, the exception is raised at its start.
            self._drop_pending()
            if val is None and tb is None:
                raise typ
            if val is None:
                val = typ()
            raise val.with_traceback(tb) if tb is not None else val
        try:
            if val is None and tb is None:
                return self._target.throw(typ)
            return self._target.throw(typ, val, tb)
        except StopIteration:
            self._finish()
            raise

    def close(self):
        self._drop_pending()
        close = getattr(self._target, "close", None)
        if close is not None:
            close()

    cdef void _drop_pending(self) noexcept:
        self._runner = self._scope = self._receive = self._send = None

    cdef int _start(self) except -1:
        runner = self._runner
        scope, receive, send = self._scope, self._receive, self._send
        self._drop_pending()
        _runner_enter(<ContextRunner>runner, self, scope, receive, send)
        return 0

    cdef object _resume(self, value):
        cdef PyObject* result = NULL
        status = _await_step(<PyObject*>self, <PyObject*>value, &result)
        returned = <object>result
        Py_XDECREF(result)
        if status == 1:
            return returned
        if returned is None:
            raise StopIteration
        raise StopIteration(returned)

    cdef int _finish(self) except -1:
        token = self._token
        self._target = None
        if token is not None:
            self._token = None
            PyContextVar_Reset(_context_var, token)
        return 0


cdef int _await_step(PyObject* waiter, PyObject* value, PyObject** result) except -1:
    """One step of the app: 1 with the yielded value, 0 with the returned one (context reset)."""
    cdef _ContextAwait self = <_ContextAwait>waiter
    if self._runner is not None:
        if <object>value is not None:
            raise TypeError("can't send non-None value to a just-started coroutine")
        self._start()
    elif self._target is None:
        raise RuntimeError("cannot reuse already awaited coroutine")
    if PyIter_Send(self._target, <object>value, result) != PYGEN_RETURN:
        return 1
    try:
        self._finish()
    except BaseException:
        Py_XDECREF(result[0])
        result[0] = NULL
        raise
    return 0


cdef extern from *:
    """
    typedef int (*fastmw_step_fn)(PyObject*, PyObject*, PyObject**);
    static fastmw_step_fn fastmw_await_step = NULL;

    /* tp_iternext: a None result ends the iteration with no exception set, which
       every caller (SEND, PyIter_Send, next()) reads as StopIteration(None). */
    static PyObject* fastmw_await_iternext(PyObject* self) {
        PyObject* result = NULL;
        PyObject* stop;
        int status = fastmw_await_step(self, Py_None, &result);
        if (status == 1) return result;
        if (status < 0) return NULL;
        if (result != Py_None) {
            stop = PyObject_CallOneArg(PyExc_StopIteration, result);
            if (stop != NULL) {
                PyErr_SetObject(PyExc_StopIteration, stop);
                Py_DECREF(stop);
            }
        }
        Py_DECREF(result);
        return NULL;
    }

    /* am_send (CPython 3.10+): PyIter_Send's fast path, any sent value, no exceptions. */
    static PySendResult fastmw_await_am_send(PyObject* self, PyObject* arg, PyObject** presult) {
        int status = fastmw_await_step(self, arg, presult);
        if (status < 0) {
            *presult = NULL;
            return PYGEN_ERROR;
        }
        return status == 1 ? PYGEN_NEXT : PYGEN_RETURN;
    }

    static int fastmw_install_await_slots(PyObject* type, fastmw_step_fn step) {
        PyTypeObject* t = (PyTypeObject*)type;
        if (t->tp_as_async == NULL || t->tp_as_async->am_await == NULL) {
            PyErr_SetString(PyExc_SystemError, "fastmw: awaitable type has no tp_as_async");
            return -1;
        }
        fastmw_await_step = step;
        t->tp_iternext = fastmw_await_iternext;
        t->tp_as_async->am_send = fastmw_await_am_send;
        PyType_Modified(t);
        return 0;
    }
    """
    int fastmw_install_await_slots(object type, int (*step)(PyObject*, PyObject*, PyObject**) except -1) except -1


fastmw_install_await_slots(_ContextAwait, _await_step)


cdef int _enable_vectorcalls() except -1:
    # The offset of each type's per-instance vectorcall pointer, read off a probe instance.
    cdef HeaderSend send_probe = HeaderSend.__new__(HeaderSend)
    cdef ContextRunner runner_probe = ContextRunner.__new__(ContextRunner)
    cdef Py_ssize_t send_offset = <char*>&send_probe._vectorcall - <char*><PyObject*>send_probe
    cdef Py_ssize_t runner_offset = <char*>&runner_probe._vectorcall - <char*><PyObject*>runner_probe
    fastmw_enable_vectorcall(HeaderSend, send_offset, <void*>_header_send_call, NULL)
    fastmw_enable_vectorcall(ContextRunner, runner_offset, NULL, <void*>_runner_call)
    return 0


_enable_vectorcalls()
solo_call = _new_solo_call()
# asyncio (create_task, iscoroutine) takes the runner's awaitable as a coroutine, as it
# does Cython's own coroutines.
Coroutine.register(_ContextAwait)
