# cython: language_level=3, embedsignature=True, auto_pickle=False
"""Measurement floors for ``make bench-instructions``, not fastmw code.

Each class is a middleware layer that passes requests through unchanged: what any
compiled layer costs before it does any work. Compiled on first use by ``_instr_floors``.
"""

cimport cython
from cpython.contextvars cimport PyContextVar_Reset, PyContextVar_Set
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF

from contextvars import ContextVar


cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT

    # PYGEN_ERROR always comes with the app's exception set.
    PySendResult PyIter_Send(object iterator, object arg, PyObject** presult) except PYGEN_ERROR


@cython.final
@cython.freelist(8)
cdef class StartedSend:
    """Wraps ``send``: flags the first message, forwards every message."""

    cdef readonly object send
    cdef readonly bint started

    def __call__(self, message):
        if not self.started:
            self.started = True
        return self.send(message)


cdef StartedSend _started_send(send):
    cdef StartedSend wrapped = StartedSend.__new__(StartedSend)
    wrapped.send = send
    return wrapped


@cython.final
@cython.freelist(8)
cdef class Step:
    """A home-made coroutine: drives the app's coroutine with ``PyIter_Send``."""

    cdef object coro

    def __await__(self):
        return self

    def __next__(self):
        cdef bint done
        out = self._send(None, &done)
        if not done:
            return out
        if out is None:
            # Right in __next__, Cython returns NULL with no exception set: no object, no traceback.
            raise StopIteration
        raise StopIteration(out)

    def send(self, value):
        cdef bint done
        out = self._send(value, &done)
        if done:
            raise StopIteration(out)
        return out

    def throw(self, *args):
        return self.coro.throw(*args)

    cdef object _send(self, value, bint* done):
        """What the app's coroutine yields, or (``done``) what it returned."""
        cdef PyObject* result = NULL
        done[0] = PyIter_Send(self.coro, value, &result) == PYGEN_RETURN
        out = <object>result
        Py_DECREF(out)  # PyIter_Send handed over a new reference; ``out`` holds its own
        return out


cdef Step _step(coro):
    cdef Step step = Step.__new__(Step)
    step.coro = coro
    return step


cdef class _Layer:
    cdef object app

    def __init__(self, app):
        self.app = app


cdef class AsyncLayer(_Layer):
    """``async def __call__`` awaiting the app (the shape of fastmw's engine)."""

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


cdef class AsyncSendLayer(_Layer):
    """``AsyncLayer`` that also wraps ``send`` in a ``StartedSend``."""

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, _started_send(send))


# A context variable of the floors' own, as a middleware publishing a per-request value uses one.
cdef object FLOOR_VALUE = ContextVar("fastmw_floor_value", default=None)


cdef class AsyncVarLayer(_Layer):
    """``AsyncSendLayer`` that also sets a context variable for the request and resets it after."""

    async def __call__(self, scope, receive, send):
        token = PyContextVar_Set(FLOOR_VALUE, scope)
        try:
            await self.app(scope, receive, _started_send(send))
        finally:
            PyContextVar_Reset(FLOOR_VALUE, token)


cdef class AsyncTwoVarsLayer(_Layer):
    """``AsyncVarLayer`` with two context variables."""

    async def __call__(self, scope, receive, send):
        first = PyContextVar_Set(FLOOR_VALUE, scope)
        second = PyContextVar_Set(FLOOR_SECOND, scope)
        try:
            await self.app(scope, receive, _started_send(send))
        finally:
            PyContextVar_Reset(FLOOR_SECOND, second)
            PyContextVar_Reset(FLOOR_VALUE, first)


cdef class AsyncVarsLayer(_Layer):
    """``AsyncVarLayer`` with three context variables."""

    async def __call__(self, scope, receive, send):
        first = PyContextVar_Set(FLOOR_VALUE, scope)
        second = PyContextVar_Set(FLOOR_SECOND, scope)
        third = PyContextVar_Set(FLOOR_THIRD, scope)
        try:
            await self.app(scope, receive, _started_send(send))
        finally:
            PyContextVar_Reset(FLOOR_THIRD, third)
            PyContextVar_Reset(FLOOR_SECOND, second)
            PyContextVar_Reset(FLOOR_VALUE, first)


cdef object FLOOR_SECOND = ContextVar("fastmw_floor_second", default=None)
cdef object FLOOR_THIRD = ContextVar("fastmw_floor_third", default=None)


cdef class StepLayer(_Layer):
    """``def __call__`` returning a ``Step`` around the app's coroutine."""

    def __call__(self, scope, receive, send):
        return _step(self.app(scope, receive, send))


cdef class StepSendLayer(_Layer):
    """``StepLayer`` that also wraps ``send`` in a ``StartedSend``."""

    def __call__(self, scope, receive, send):
        return _step(self.app(scope, receive, _started_send(send)))


cdef class PassThrough(_Layer):
    """Returns the app's coroutine: the lower bound of a layer that runs nothing after the app."""

    def __call__(self, scope, receive, send):
        return self.app(scope, receive, send)
