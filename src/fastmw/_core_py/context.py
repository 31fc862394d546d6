"""Context storage: the request context ContextVar and its dict-like view."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextvars import Token
from typing import Any

from fastmw._core_py._common import _type_name
from fastmw._storage import REQUEST_CONTEXT
from fastmw.errors import ConfigurationError, ContextDoesNotExistError

# --------------------------------------------------------------------------- context storage


def context_set(data: dict[Any, Any]) -> Token[dict[Any, Any]]:
    """Make ``data`` the current request context; returns the token to reset it."""
    if not isinstance(data, dict):
        raise TypeError(f"context data must be a dict, not {_type_name(data)}")
    return REQUEST_CONTEXT.set(data)


def context_reset(token: Token[dict[Any, Any]]) -> None:
    """Restore the context that was current before ``context_set`` returned ``token``."""
    REQUEST_CONTEXT.reset(token)


def context_get() -> dict[Any, Any]:
    """The current request context dict; raises ``ContextDoesNotExistError`` outside a request."""
    data = REQUEST_CONTEXT.get(None)
    if data is None:
        raise ContextDoesNotExistError()
    return data


class _Context:
    """A dict-like view of the current request's context (starlette-context's ``context``)."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise ConfigurationError("Can't instantiate with attributes")

    @property
    def data(self) -> dict[Any, Any]:
        """The context dict itself, for dumping (e.g. to JSON)."""
        return context_get()

    def exists(self) -> bool:
        """Whether a request context is active."""
        return REQUEST_CONTEXT.get(None) is not None

    def copy(self) -> dict[Any, Any]:
        """A shallow copy of the context dict."""
        return context_get().copy()

    def __getitem__(self, key: Any) -> Any:
        return context_get()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        context_get()[key] = value

    def __delitem__(self, key: Any) -> None:
        del context_get()[key]

    def __contains__(self, key: Any) -> bool:
        return key in context_get()

    def __len__(self) -> int:
        return len(context_get())

    def __iter__(self) -> Iterator[Any]:
        return iter(context_get())

    def __eq__(self, other: object) -> bool:
        data = context_get()
        if isinstance(other, _Context):
            return data == other.data
        return data == other

    __hash__ = None  # type: ignore[assignment]

    def get(self, key: Any, default: Any = None) -> Any:
        return context_get().get(key, default)

    def keys(self) -> Any:
        return context_get().keys()

    def values(self) -> Any:
        return context_get().values()

    def items(self) -> Any:
        return context_get().items()

    def pop(self, key: Any, *default: Any) -> Any:
        return context_get().pop(key, *default)

    def popitem(self) -> tuple[Any, Any]:
        return context_get().popitem()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return context_get().setdefault(key, default)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        context_get().update(other, **kwargs)

    def clear(self) -> None:
        context_get().clear()

    def __ior__(self, other: Any) -> _Context:
        context_get().update(other)
        return self

    def __repr__(self) -> str:
        data = REQUEST_CONTEXT.get(None)
        return f"<fastmw.ctx._Context {data if data is not None else {}}>"

    def __str__(self) -> str:
        data = REQUEST_CONTEXT.get(None)
        return str(data if data is not None else {})


MutableMapping.register(_Context)
