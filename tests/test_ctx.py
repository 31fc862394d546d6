"""``fastmw.ctx``: the context object and request_cycle_context (both core twins)."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from types import ModuleType

import pytest

import fastmw
from fastmw import ctx
from fastmw._impl import core as live_core
from fastmw.errors import ConfigurationError, ContextDoesNotExistError

MESSAGE = (
    "You didn't use the required middleware or you're trying to access `context` object "
    "outside of the request-response cycle."
)


def test_ctx_exports_the_live_core_class() -> None:
    assert ctx._Context is live_core._Context
    assert isinstance(ctx.context, live_core._Context)
    assert fastmw.context is ctx.context
    assert fastmw.request_cycle_context is ctx.request_cycle_context


def test_outside_a_request(core: ModuleType) -> None:
    context = core._Context()
    with pytest.raises(ContextDoesNotExistError) as info:
        _ = context.data
    assert str(info.value) == MESSAGE and info.value.message == MESSAGE
    for operation in (
        lambda: context["a"],
        lambda: len(context),
        lambda: context.get("a"),
        context.copy,
        lambda: context.update(a=1),
        lambda: bool(context),
    ):
        with pytest.raises(ContextDoesNotExistError):
            operation()
    assert context.exists() is False
    assert str(context) == "{}" and repr(context) == "<fastmw.ctx._Context {}>"


def test_constructor_refuses_arguments(core: ModuleType) -> None:
    for args, kwargs in (((1,), {}), ((), {"a": 1}), (({"a": 1},), {})):
        with pytest.raises(ConfigurationError, match="Can't instantiate with attributes"):
            core._Context(*args, **kwargs)


def test_is_a_mutable_mapping_and_unhashable(core: ModuleType) -> None:
    context = core._Context()
    assert isinstance(context, MutableMapping)
    with pytest.raises(TypeError):
        hash(context)


def test_request_cycle_context_copies_and_resets(core: ModuleType) -> None:
    context = core._Context()
    initial = {"a": 1}
    with ctx.request_cycle_context(initial):
        context["b"] = 2
        assert context.data == {"a": 1, "b": 2}
        with ctx.request_cycle_context():
            assert context.data == {}
        assert context.data == {"a": 1, "b": 2}
    assert initial == {"a": 1}
    assert not context.exists()


def test_request_cycle_context_left_in_place_on_error() -> None:
    """Like starlette-context: an exception keeps the context for outer handlers."""

    async def scenario() -> bool:
        with pytest.raises(ValueError):
            with ctx.request_cycle_context({"x": 1}):
                raise ValueError
        return bool(ctx.context.get("x") == 1)

    assert asyncio.run(scenario())


def test_data_is_shared_with_child_tasks(core: ModuleType) -> None:
    context = core._Context()

    async def child() -> None:
        context["child"] = True

    async def scenario() -> dict[str, bool]:
        with ctx.request_cycle_context():
            await asyncio.create_task(child())
            await asyncio.to_thread(context.__setitem__, "thread", True)
            copied: dict[str, bool] = context.copy()
            return copied

    assert asyncio.run(scenario()) == {"child": True, "thread": True}
