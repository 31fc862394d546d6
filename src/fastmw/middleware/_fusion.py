"""Fusion: adjacent fastmw middlewares run as one core pipeline (one coroutine per request).

Every fastmw middleware is a ``core.Pipeline`` configured with one core stage (built
once in ``__init__`` from its options). When a fastmw middleware is built around
another one (``Outer(app=Inner)``: what a ``Middleware`` list, ``add_middleware`` and
direct wrapping all do), the outer one takes over the inner one's stages and runs
them all: a request through any number of adjacent fastmw middlewares is one call
into the compiled engine.

An inner middleware stays a layer of its own (no fusion) when ``FASTMW_NO_FUSE=1``
(read once at import), when either side says ``fuse=False``, when its class defines
its own ``__call__``, or when it has no stage (a context middleware whose user hooks
must be awaited); and two body caches never share one pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from starlette.types import ASGIApp, Receive, Scope, Send

from fastmw._impl import core, env_flag
from fastmw.types import Stage

__all__ = ["FUSE", "FusableMiddleware", "fused_stages"]

# Fusion is on unless FASTMW_NO_FUSE says otherwise (read once, like FASTMW_NO_EXTENSIONS).
FUSE = not env_flag("FASTMW_NO_FUSE")

# ``wrap(app) -> app``: how a middleware handles lifespan and unknown scopes around ``app``.
OtherWrapper = Callable[[ASGIApp], ASGIApp]


def fused_stages(app: object) -> tuple[Stage, ...]:
    """The stages a fastmw middleware runs in one pipeline (outermost first); () for anything else."""
    return tuple(app.stages) if isinstance(app, FusableMiddleware) else ()


class FusableMiddleware(core.Pipeline):
    """Base of the fastmw middlewares: a core pipeline whose first stage is this middleware's."""

    # The engine's coroutine function itself: servers (uvicorn, hypercorn) see ASGI 3.
    __call__ = core.run_pipeline

    fuse: bool = True
    # This middleware's core stage; None runs ``_layer`` as a plain Python layer instead.
    _stage: core.Stage | None = None
    _app: ASGIApp
    # The middlewares whose stages this pipeline runs, outermost first.
    _members: tuple[FusableMiddleware, ...] = ()
    # Set once __init__ attached the app: from then on setting .app rebuilds the pipeline.
    _attached = False

    @property
    def app(self) -> ASGIApp:
        """The wrapped application (the next layer as it was given)."""
        return self._app

    @app.setter
    def app(self, value: ASGIApp) -> None:
        self._app = value
        if self._attached:
            self._build()

    def _attach(self, app: ASGIApp, stage: core.Stage | None, fuse: bool) -> None:
        """Call at the end of ``__init__``, once the options are validated and the stage built."""
        self.fuse = bool(fuse)
        self._stage = stage
        self._app = app
        self._attached = True
        self._build()

    def _joins(self, outer: FusableMiddleware) -> bool:
        """Whether ``outer`` may take over this middleware's stages."""
        if not (FUSE and self.fuse and outer.fuse and self._stage is not None and outer._stage is not None):
            return False
        # A subclass with its own __call__ runs as a layer.
        if type(self).__call__ is not core.run_pipeline:
            return False
        # One receive recorder holds one body copy: two body caches stay two layers.
        return not (outer._keeps_body() and any(member._keeps_body() for member in self._members))

    def _build(self) -> None:
        inner = self._app
        if self._stage is None:
            # A Python layer: the pipeline has no stage and runs it as its app.
            self._members = ()
            self.configure(partial(self._layer, inner), ())
            return
        if isinstance(inner, FusableMiddleware) and inner._joins(self):
            members: tuple[FusableMiddleware, ...] = (self, *inner._members)
            terminal = inner.terminal
        else:
            members = (self,)
            terminal = inner
        self._members = members
        other = terminal
        for member in reversed(members):
            other = member._wrap_other(other)
        stages = [member._stage for member in members if member._stage is not None]
        self.configure(terminal, stages, other)

    # ------------------------------------------------------------------ per-middleware hooks

    def _keeps_body(self) -> bool:
        return False

    def _wrap_other(self, app: ASGIApp) -> ASGIApp:
        """The app lifespan and unknown scopes go to, inside this middleware (default: ``app``)."""
        return app

    async def _layer(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """The whole request when this middleware has no stage."""
        raise NotImplementedError  # pragma: no cover - middlewares without a stage define it
