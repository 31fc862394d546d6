"""fastmw middlewares (starlette-context's ``starlette_context.middleware`` names included)."""

from fastmw.middleware.context_middleware import ContextMiddleware
from fastmw.middleware.raw_middleware import RawContextMiddleware

__all__ = ["ContextMiddleware", "RawContextMiddleware"]
