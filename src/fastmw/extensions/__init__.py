"""Optional integrations, each imported only on demand (``import fastmw`` imports none).

* ``fastmw.extensions.celery`` (``pip install fastmw[celery]``): ``load_correlation_ids`` and
  ``load_celery_current_and_parent_ids``, asgi-correlation-id's Celery signal handlers.
* ``fastmw.extensions.sentry`` (``pip install fastmw[sentry]``): ``get_sentry_extension`` and
  ``set_transaction_id``; the request-id middlewares use it by themselves when sentry-sdk is
  installed.
* ``fastmw.extensions.otel`` (``pip install fastmw[otel]``): OpenTelemetry interop for
  ``TraceContextMiddleware``.

Importing one without its library raises ``ImportError`` naming the extra to install.
"""
