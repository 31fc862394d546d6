"""The interpreter's own ``await``, for the compiled core.

Cython's ``await`` words its errors as CPython 3.13 did (CPython 3.14 and 3.15 reworded
them), so the compiled engine hands anything that is not a coroutine to this coroutine:
what it accepts, and how it refuses, are then exactly the pure twin's on every version.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def interpreter_await(awaitable: Awaitable[T]) -> T:
    """``await awaitable``, by the running interpreter."""
    return await awaitable
