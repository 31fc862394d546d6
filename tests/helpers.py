"""Re-export of the ASGI drivers in conftest, importable as ``tests.helpers``."""

from fastmw.types import ASGIApp, Message
from tests.conftest import Recorder, call_app, feeder, http_scope, plain_app, run

__all__ = ["ASGIApp", "Message", "Recorder", "call_app", "feeder", "http_scope", "plain_app", "run"]
