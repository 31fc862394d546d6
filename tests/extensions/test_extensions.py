"""fastmw.extensions: optional integrations stay out of ``import fastmw``."""

from __future__ import annotations

from tests.extensions.conftest import run_python


def test_import_fastmw_imports_neither_celery_nor_sentry() -> None:
    done = run_python(
        """
        import sys
        import fastmw, fastmw.extensions, fastmw.logging, fastmw.middleware.request_id
        from fastmw import CeleryTracingIdsFilter, celery_current_id, celery_parent_id
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("celery", "kombu", "sentry_sdk"))
        print(loaded)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_middleware_imports_sentry_only_when_built() -> None:
    done = run_python(
        """
        import sys
        import fastmw
        assert "sentry_sdk" not in sys.modules
        fastmw.CorrelationIdMiddleware(None)
        print("sentry_sdk" in sys.modules, "fastmw.extensions.sentry" in sys.modules, "celery" in sys.modules)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "False"]
