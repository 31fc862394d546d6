"""fastmw: Cython-accelerated ASGI middleware for Starlette, FastAPI and any ASGI app."""

from fastmw._impl import COMPILED
from fastmw._storage import REQUEST_CONTEXT as _request_scope_context_storage

__version__ = "0.1.0"

__all__ = ["COMPILED", "__version__"]
