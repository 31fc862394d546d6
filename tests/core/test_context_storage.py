"""Context storage: the ContextVar helpers and the dict-like ``_Context`` proxy."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import MutableMapping
from types import ModuleType

import pytest

from fastmw._storage import REQUEST_CONTEXT
from fastmw.errors import CONTEXT_DOES_NOT_EXIST_MESSAGE, ConfigurationError, ContextDoesNotExistError


def in_fresh_context(func: object) -> object:
    return contextvars.copy_context().run(func)  # type: ignore[arg-type]


def test_outside_a_request_reads_raise_but_repr_does_not(core: ModuleType) -> None:
    def check() -> None:
        proxy = core._Context()
        assert not proxy.exists()
        for action in (lambda: proxy["a"], lambda: proxy.data, lambda: proxy.get("a"), lambda: len(proxy)):
            with pytest.raises(ContextDoesNotExistError) as info:
                action()
            assert str(info.value) == CONTEXT_DOES_NOT_EXIST_MESSAGE
            assert isinstance(info.value, RuntimeError)
        with pytest.raises(ContextDoesNotExistError):
            core.context_get()
        assert str(proxy) == "{}"
        assert repr(proxy) == "<fastmw.ctx._Context {}>"

    in_fresh_context(check)


def test_dict_behaviour_inside_a_request(core: ModuleType) -> None:
    def check() -> None:
        data = {"a": 1}
        token = core.context_set(data)
        proxy = core._Context()
        assert proxy.exists() and proxy.data is data and core.context_get() is data
        proxy["b"] = 2
        assert data == {"a": 1, "b": 2}
        assert proxy["a"] == 1 and proxy.get("zz", 5) == 5 and "b" in proxy and len(proxy) == 2
        assert list(proxy) == ["a", "b"] and list(proxy.keys()) == ["a", "b"]
        assert list(proxy.values()) == [1, 2] and list(proxy.items()) == [("a", 1), ("b", 2)]
        proxy |= {"c": 0}
        assert isinstance(proxy, core._Context) and data["c"] == 0
        proxy.update({"c": 3}, d=4)
        assert proxy.setdefault("c", 9) == 3 and proxy.pop("d") == 4 and proxy.pop("d", None) is None
        copied = proxy.copy()
        copied["x"] = 1
        assert "x" not in proxy and isinstance(copied, dict)
        assert proxy == {"a": 1, "b": 2, "c": 3} and proxy != {"a": 1}
        assert str(proxy) == str(data) and repr(proxy) == f"<fastmw.ctx._Context {data}>"
        del proxy["c"]
        assert proxy.popitem() == ("b", 2)
        proxy.clear()
        assert data == {}
        with pytest.raises(KeyError):
            proxy["nope"]
        core.context_reset(token)
        assert not proxy.exists()

    in_fresh_context(check)


def test_proxy_is_a_mutable_mapping_and_refuses_arguments(core: ModuleType) -> None:
    assert isinstance(core._Context(), MutableMapping)
    with pytest.raises(ConfigurationError, match="Can't instantiate with attributes"):
        core._Context({"a": 1})
    with pytest.raises(ConfigurationError):
        core._Context(a=1)
    with pytest.raises(TypeError):
        hash(core._Context())


def test_both_twins_share_one_context_variable(twins: tuple[ModuleType, ModuleType]) -> None:
    compiled, pure = twins

    def check() -> None:
        token = compiled.context_set({"k": "v"})
        assert pure.context_get() == {"k": "v"} and REQUEST_CONTEXT.get() == {"k": "v"}
        pure.context_reset(token)
        assert not compiled._Context().exists()

    in_fresh_context(check)


def test_context_set_needs_a_dict(core: ModuleType) -> None:
    with pytest.raises(TypeError, match="context data must be a dict, not list"):
        core.context_set([])


def test_concurrent_tasks_see_their_own_context(core: ModuleType) -> None:
    proxy = core._Context()

    async def request(index: int) -> list[int]:
        token = core.context_set({"i": index})
        seen = []
        for _ in range(3):
            await asyncio.sleep(0)
            seen.append(proxy["i"])
        core.context_reset(token)
        return seen

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(request(i) for i in range(50)))

    results = asyncio.run(main())
    assert results == [[i, i, i] for i in range(50)]
