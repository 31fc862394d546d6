"""Celery (``pip install fastmw[celery]``): correlation and tracing ids across tasks.

asgi-correlation-id's ``load_correlation_ids`` and ``load_celery_current_and_parent_ids``, with
the same names, arguments, defaults and behaviour. asgi-correlation-id 5.0 dropped its Celery
extension for a README recipe (the same three signal handlers as ``load_correlation_ids``);
these keep the 4.x functions, so either way of using it carries over.

Call them once where the Celery app is configured (in the web process and in the worker).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    from celery.signals import before_task_publish, task_postrun, task_prerun
except ImportError as exc:  # tested in a subprocess
    raise ImportError(
        f"fastmw.extensions.celery needs Celery, which is not installed ({exc}): pip install fastmw[celery]"
    ) from exc

from fastmw._impl import core
from fastmw._storage import CELERY_CURRENT_ID, CELERY_PARENT_ID, CORRELATION_ID

if TYPE_CHECKING:
    from celery import Task

__all__ = ["load_celery_current_and_parent_ids", "load_correlation_ids", "uuid_hex_generator"]

CORRELATION_ID_HEADER = "CORRELATION_ID"
PARENT_ID_HEADER = "CELERY_PARENT_ID"


def uuid_hex_generator() -> str:
    """A random UUID4 as 32 lower-case hex digits, like ``uuid4().hex``."""
    return core.new_request_id()


def _load_sentry() -> None:
    """Where sentry-sdk is installed, its event processor tags a task's events with its id."""
    try:
        import fastmw.extensions.sentry  # noqa: F401
    except ImportError:
        pass


def load_correlation_ids(
    header_key: str = CORRELATION_ID_HEADER, generator: Callable[[], str] = uuid_hex_generator
) -> None:
    """Carry ``correlation_id`` from a request (or a running task) into the tasks it publishes.

    The worker sets it while the task runs, from the ``header_key`` task header, or from
    ``generator`` when the task was published with none (Sentry events built in the task carry
    it, where sentry-sdk is installed), and sets it back to None after the task.
    """
    _load_sentry()

    def transfer_correlation_id(headers: dict[str, Any], **kwargs: Any) -> None:
        value = CORRELATION_ID.get()
        if value:
            headers[header_key] = value

    def load_correlation_id(task: Task, **kwargs: Any) -> None:
        value = task.request.get(header_key) or generator()
        CORRELATION_ID.set(value)

    def cleanup(**kwargs: Any) -> None:
        # A worker thread's context outlives its tasks: clear it for the next one.
        CORRELATION_ID.set(None)

    before_task_publish.connect(transfer_correlation_id, weak=False)
    task_prerun.connect(load_correlation_id, weak=False)
    task_postrun.connect(cleanup, weak=False)


def load_celery_current_and_parent_ids(
    header_key: str = PARENT_ID_HEADER,
    generator: Callable[[], str] = uuid_hex_generator,
    use_internal_celery_task_id: bool = False,
) -> None:
    """Tracing ids with depth: ``celery_current_id`` for each running task, ``celery_parent_id``
    for the task that published it (None for a task published from a request or from beat).

    ``celery_current_id`` comes from ``generator``, or is Celery's own task id when
    ``use_internal_celery_task_id`` is true. Both are set back to None after the task.
    """

    def publish_task_from_worker_or_request(headers: dict[str, Any], **kwargs: Any) -> None:
        current = CELERY_CURRENT_ID.get()
        if current:
            headers[header_key] = current

    def worker_prerun(task_id: str, task: Task, **kwargs: Any) -> None:
        parent = task.request.get(header_key)
        if parent:
            CELERY_PARENT_ID.set(parent)
        CELERY_CURRENT_ID.set(task_id if use_internal_celery_task_id else generator())

    def clean_up(**kwargs: Any) -> None:
        CELERY_CURRENT_ID.set(None)
        CELERY_PARENT_ID.set(None)

    before_task_publish.connect(publish_task_from_worker_or_request, weak=False)
    task_prerun.connect(worker_prerun, weak=False)
    task_postrun.connect(clean_up, weak=False)
