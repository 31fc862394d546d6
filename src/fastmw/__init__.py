"""fastmw: Cython-accelerated ASGI middleware for Starlette, FastAPI and any ASGI app."""

from fastmw import plugins
from fastmw._impl import COMPILED

# starlette-context's private name for the context variable: real user plugins read it.
from fastmw._storage import REQUEST_CONTEXT as _request_scope_context_storage  # noqa: F401
from fastmw.ctx import context, request_cycle_context
from fastmw.middleware import ContextMiddleware, RawContextMiddleware

__version__ = "0.1.0"

__all__ = [
    "COMPILED",
    "ContextMiddleware",
    "RawContextMiddleware",
    "__version__",
    "context",
    "plugins",
    "request_cycle_context",
]
