"""Re-export of the ASGI drivers in conftest, importable as ``tests.helpers``."""

from fastmw.types import ASGIApp, Message
from tests.conftest import Recorder, asyncio_sees_a_coroutine_function, call_app, feeder, http_scope, plain_app, run

__all__ = [
    "ASGIApp",
    "Message",
    "Recorder",
    "asyncio_sees_a_coroutine_function",
    "call_app",
    "feeder",
    "http_scope",
    "plain_app",
    "run",
]
