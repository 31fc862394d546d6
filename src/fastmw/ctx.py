"""The request-scoped ``context`` object and ``request_cycle_context``.

``context`` is a dict-like view of the current request's dict, stored in the
``fastmw._request_scope_context_storage`` ContextVar (the core's ``_Context``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastmw._impl import core

__all__ = ["_Context", "context", "request_cycle_context"]

_Context = core._Context

context = _Context()

_context_set = core.context_set
_context_reset = core.context_reset


@contextmanager
def request_cycle_context(initial_data: dict[Any, Any] | None = None) -> Iterator[None]:
    """Create a context holding a copy of ``initial_data`` and reset it on exit.

    The middlewares use it implicitly; use it directly to give code a context
    outside a request cycle, e.g. in unit tests.
    """
    token = _context_set({} if initial_data is None else initial_data.copy())
    yield
    # Like starlette-context, an exception in the block leaves the context in
    # place, so that outer exception handlers can still read it.
    _context_reset(token)
