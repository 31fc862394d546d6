"""fastmw benchmark suite (outside the default test run): ``make bench`` / ``make bench-e2e``."""

import sys


def without_sentry() -> None:
    """Measure without sentry-sdk, as before it joined the test requirements: where it is
    importable, fastmw's and asgi-correlation-id's middlewares both tag Sentry per request."""
    sys.modules.setdefault("sentry_sdk", None)  # type: ignore[arg-type]
