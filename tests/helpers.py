"""Re-export of the ASGI drivers in conftest, importable as ``tests.helpers``."""

from tests.conftest import ASGIApp, Message, Recorder, call_app, feeder, http_scope, plain_app, run

__all__ = ["ASGIApp", "Message", "Recorder", "call_app", "feeder", "http_scope", "plain_app", "run"]
