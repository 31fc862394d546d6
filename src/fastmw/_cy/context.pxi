# Context storage: the request context ContextVar and its dict-like view.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.

# --------------------------------------------------------------------------- context storage


cpdef context_set(data):
    """Make ``data`` the current request context; returns the token to reset it."""
    if not isinstance(data, dict):
        raise TypeError(f"context data must be a dict, not {_type_name(data)}")
    return PyContextVar_Set(_context_var, data)


cpdef context_reset(token):
    """Restore the context that was current before ``context_set`` returned ``token``."""
    PyContextVar_Reset(_context_var, token)


cdef inline object _current_or_none():
    cdef PyObject* value = NULL
    PyContextVar_Get(_context_var, NULL, &value)
    if value == NULL:
        return None
    result = <object>value
    Py_XDECREF(value)
    return result


cpdef object context_get():
    """The current request context dict; raises ``ContextDoesNotExistError`` outside a request."""
    data = _current_or_none()
    if data is None:
        raise ContextDoesNotExistError()
    return data


cdef class _Context:
    """A dict-like view of the current request's context (starlette-context's ``context``)."""

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise ConfigurationError("Can't instantiate with attributes")

    @property
    def data(self):
        """The context dict itself, for dumping (e.g. to JSON)."""
        return context_get()

    def exists(self):
        """Whether a request context is active."""
        return _current_or_none() is not None

    def copy(self):
        """A shallow copy of the context dict."""
        return context_get().copy()

    def __getitem__(self, key):
        return context_get()[key]

    def __setitem__(self, key, value):
        context_get()[key] = value

    def __delitem__(self, key):
        del context_get()[key]

    def __contains__(self, key):
        return key in context_get()

    def __len__(self):
        return len(context_get())

    def __iter__(self):
        return iter(context_get())

    def __eq__(self, other):
        data = context_get()
        if isinstance(other, _Context):
            return data == other.data
        return data == other

    def get(self, key, default=None):
        return context_get().get(key, default)

    def keys(self):
        return context_get().keys()

    def values(self):
        return context_get().values()

    def items(self):
        return context_get().items()

    def pop(self, key, *default):
        return context_get().pop(key, *default)

    def popitem(self):
        return context_get().popitem()

    def setdefault(self, key, default=None):
        return context_get().setdefault(key, default)

    def update(self, other=(), /, **kwargs):
        context_get().update(other, **kwargs)

    def clear(self):
        context_get().clear()

    def __ior__(self, other):
        context_get().update(other)
        return self

    def __repr__(self):
        data = _current_or_none()
        return f"<fastmw.ctx._Context {data if data is not None else {}}>"

    def __str__(self):
        data = _current_or_none()
        return str(data if data is not None else {})


MutableMapping.register(_Context)
