"""Fusion: adjacent fastmw middlewares run as one core pipeline (one coroutine per request).

Every fastmw middleware is a ``core.Pipeline`` configured with one core stage (built
once in ``__init__`` from its options). When a fastmw middleware is built around
another one (``Outer(app=Inner)``: what a ``Middleware`` list, ``add_middleware`` and
direct wrapping all do), the outer one runs the inner one's stages too: a request
through any number of adjacent fastmw middlewares is one call into the compiled engine.

A fused pipeline refers to its parts: each middleware knows the pipelines that took
over its stages and rebuilds them when its own pipeline changes, so setting ``.app``
at any level is seen by every pipeline that runs that level (fusion never changes
what is served).

An inner middleware stays a layer of its own (no fusion) when ``FASTMW_NO_FUSE=1``
(read once at import), when either side says ``fuse=False``, when its route is not the
engine's (its class defines its own ``__call__``, or user hooks must be awaited); and
two body caches never share one pipeline. A middleware whose user hooks must be awaited
(route ``awaited``) runs ``_layer`` first, which awaits them and then runs its own stage in
a pipeline of its own: the stage does the same work on both routes.

The core a middleware runs on comes from one switch, ``fastmw._impl.layer_core()``: the
class a user writes is bound, on first use, to a subclass of that core's ``Pipeline``.
"""

from __future__ import annotations

import weakref
from functools import partial
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.types import ASGIApp, Receive, Scope, Send

from fastmw import _impl
from fastmw._impl import env_flag
from fastmw._route import OWN_CALL, Route, defines
from fastmw.types import Stage

if TYPE_CHECKING:
    from fastmw._core_py import Pipeline as _PipelineBase
else:
    # The core's Pipeline is mixed in when the class is bound to a core (``_bound``).
    _PipelineBase = object

__all__ = ["FUSE", "FusableMiddleware", "bound_class", "fused_stages"]

# Fusion is on unless FASTMW_NO_FUSE says otherwise (read once, like FASTMW_NO_EXTENSIONS).
FUSE = not env_flag("FASTMW_NO_FUSE")


def fused_stages(app: object) -> tuple[Stage, ...]:
    """The stages a fastmw middleware runs in one pipeline (outermost first); () for anything else."""
    return tuple(app.stages) if isinstance(app, FusableMiddleware) else ()


def _is_bound_or_core(klass: type) -> bool:
    return "_core" in vars(klass) or (klass.__name__ == "Pipeline" and klass.__module__.startswith("fastmw._core"))


def _own_call(cls: type) -> bool:
    """Whether the user's classes (not FusableMiddleware nor a core's Pipeline) define ``__call__``
    (a subclass's, or one a library patched in, as sentry-sdk's Starlette integration does)."""
    return defines(cls, "__call__", lambda klass: klass is FusableMiddleware or _is_bound_or_core(klass))


def _bound(cls: type[FusableMiddleware], core: ModuleType) -> type[FusableMiddleware]:
    """``cls`` on ``core``: a subclass of it and of ``core.Pipeline``, made once per core.

    A subclass of a bound class stays on that class's core."""
    if "_core" in vars(cls):
        return cls  # already bound (a copy, or a bound class handed out for one core)
    inherited: ModuleType | None = getattr(cls, "_core", None)
    if inherited is not None:
        core = inherited
    runs_engine = not _own_call(cls)
    # Keyed by whether __call__ is the engine's too: a class patched after it was first bound.
    key = (core.__name__, runs_engine)
    made: dict[tuple[str, bool], type[FusableMiddleware]] = vars(cls).get("_bound_classes") or {}
    found = made.get(key)
    if found is not None:
        return found
    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "_core": core,
        "_runs_engine": runs_engine,
    }
    if runs_engine:
        # The engine's coroutine function itself: servers (uvicorn, hypercorn) see ASGI 3.
        namespace["__call__"] = core.run_pipeline
    bases = (cls,) if inherited is not None else (cls, core.Pipeline)
    bound: type[FusableMiddleware] = type(cls.__name__, bases, namespace)
    if "_bound_classes" not in vars(cls):
        type.__setattr__(cls, "_bound_classes", made)
    made[key] = bound
    return bound


def bound_class(cls: type[FusableMiddleware], core: ModuleType) -> type[FusableMiddleware]:
    """The class whose instances are ``cls`` running on ``core`` (``fastmw._core`` or ``fastmw._core_py``)."""
    return _bound(cls, core)


class FusableMiddleware(_PipelineBase):
    """Base of the fastmw middlewares: a core pipeline whose first stage is this middleware's."""

    # Set on the class bound to a core: the core and whether __call__ is the engine's.
    _core: ClassVar[ModuleType]
    _runs_engine: ClassVar[bool]

    fuse: bool = True
    _route: Route = Route()
    # This middleware's core stage (set by ``_attach``).
    _stage: Any = None
    _app: ASGIApp
    # The middlewares whose stages this pipeline runs, outermost first.
    _members: tuple[FusableMiddleware, ...] = ()
    # The pipelines that took over this one's stages (set in __new__).
    _fusers: weakref.WeakSet[FusableMiddleware]
    # The inner middleware whose stages this pipeline took over, if any.
    _fused_into: FusableMiddleware | None = None
    # Set once __init__ attached the app: from then on setting .app rebuilds the pipeline.
    _attached = False
    _building = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The engine, for a class whose own ``__call__`` calls ``super().__call__`` (or one a
        library wrapped); other classes run the engine's coroutine function itself."""
        await self._core.run_pipeline(self, scope, receive, send)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        bound = _bound(cls, _impl.layer_core())
        instance = bound._core.Pipeline.__new__(bound)
        # The pipelines that took over this one's stages (rebuilt when it changes).
        instance._fusers = weakref.WeakSet()
        return instance

    @property
    def route(self) -> Route:
        """What this middleware decided at construction: the user's hooks, its requests' path."""
        return self._route

    @property
    def app(self) -> ASGIApp:
        """The wrapped application (the next layer as it was given)."""
        return self._app

    @app.setter
    def app(self, value: ASGIApp) -> None:
        self._app = value
        if self._attached:
            self._build()

    def _attach(self, app: ASGIApp, stage: Stage, fuse: bool, route: Route | None = None) -> None:
        """Call at the end of ``__init__``, once the options are validated and the stage built."""
        self.fuse = bool(fuse)
        self._stage = stage
        if route is None:
            route = Route()
        if not self._runs_engine:
            route = Route(OWN_CALL, route.hooks | {"__call__"}, route.awaits)
        self._route = route
        self._app = app
        self._attached = True
        self._build()

    def _joins(self, outer: FusableMiddleware) -> bool:
        """Whether ``outer`` may take over this middleware's stages."""
        if not (FUSE and self.fuse and outer.fuse and self.route.fuses and not outer.route.awaits):
            return False
        if self._core is not outer._core:
            return False
        # One receive recorder holds one body copy: two body caches stay two layers.
        return not (outer._keeps_body() and any(member._keeps_body() for member in self._members))

    def _build(self) -> None:
        if self._building:
            return  # a cycle of middlewares: what the cycle builds is built once
        self._building = True
        try:
            self._configure()
        finally:
            self._building = False
        # Every pipeline that took over this one's stages sees the change.
        for outer in list(self._fusers):
            outer._build()

    def _configure(self) -> None:
        inner = self._app
        if self._fused_into is not None:
            self._fused_into._fusers.discard(self)
            self._fused_into = None
        if self.route.awaits:
            # The Python layer awaits the user's hooks, then runs this middleware's stage.
            self._members = ()
            runner = self._core.Pipeline(inner, (self._stage,), self._wrap_other(inner))
            self.configure(partial(self._layer, runner), ())
            return
        if isinstance(inner, FusableMiddleware) and inner is not self and inner._joins(self):
            members: tuple[FusableMiddleware, ...] = (self, *inner._members)
            terminal = inner.terminal
            inner._fusers.add(self)
            self._fused_into = inner
        else:
            members = (self,)
            terminal = inner
        self._members = members
        other = terminal
        for member in reversed(members):
            other = member._wrap_other(other)
        stages = [member._stage for member in members]
        self.configure(terminal, stages, other)

    # ------------------------------------------------------------------ per-middleware hooks

    def _keeps_body(self) -> bool:
        return False

    def _wrap_other(self, app: ASGIApp) -> ASGIApp:
        """The app lifespan and unknown scopes go to, inside this middleware (default: ``app``)."""
        return app

    async def _layer(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Await the user's hooks, then run ``app`` (this middleware's stage in the engine);
        defined by the middlewares whose route can be ``awaited``."""
        raise NotImplementedError  # pragma: no cover - only the context middlewares await hooks
