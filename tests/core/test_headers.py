"""Header operations on raw ASGI header lists, against both core twins."""

from __future__ import annotations

from types import ModuleType

import pytest
from starlette.datastructures import MutableHeaders as StarletteMutableHeaders


def sample() -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/plain"),
        (b"Set-Cookie", b"a=1"),
        (b"x-dup", b"1"),
        (b"set-cookie", b"b=2"),
        (b"X-Dup", b"2"),
    ]


def test_get_is_case_insensitive_and_returns_first(core: ModuleType) -> None:
    headers = sample()
    assert core.header_get(headers, "CONTENT-TYPE") == b"text/plain"
    assert core.header_get(headers, b"x-dup") == b"1"
    assert core.header_get(headers, "missing") is None
    assert core.header_get(headers, "missing", b"fallback") == b"fallback"


def test_getlist_keeps_order_and_duplicates(core: ModuleType) -> None:
    assert core.header_getlist(sample(), "set-cookie") == [b"a=1", b"b=2"]
    assert core.header_getlist(sample(), "nope") == []


def test_contains(core: ModuleType) -> None:
    assert core.header_contains(sample(), "X-DUP")
    assert not core.header_contains(sample(), "x-du")


def test_set_replaces_first_in_place_and_drops_duplicates(core: ModuleType) -> None:
    headers = sample()
    core.header_set(headers, "X-Dup", "3")
    assert headers == [
        (b"content-type", b"text/plain"),
        (b"Set-Cookie", b"a=1"),
        (b"x-dup", b"3"),
        (b"set-cookie", b"b=2"),
    ]


def test_set_appends_when_absent(core: ModuleType) -> None:
    headers = sample()
    core.header_set(headers, "X-New", b"v")
    assert headers[-1] == (b"x-new", b"v")
    assert len(headers) == 6


def test_append_never_collapses_set_cookie(core: ModuleType) -> None:
    headers = sample()
    core.header_append(headers, "Set-Cookie", "c=3")
    assert core.header_getlist(headers, "set-cookie") == [b"a=1", b"b=2", b"c=3"]


def test_setdefault(core: ModuleType) -> None:
    headers = sample()
    assert core.header_setdefault(headers, "x-dup", "9") == b"1"
    assert core.header_setdefault(headers, "x-other", "9") == b"9"
    assert headers[-1] == (b"x-other", b"9")


def test_delete_removes_all_and_counts(core: ModuleType) -> None:
    headers = sample()
    assert core.header_delete(headers, "SET-COOKIE") == 2
    assert core.header_delete(headers, "absent") == 0
    assert [name.lower() for name, _ in headers] == [b"content-type", b"x-dup", b"x-dup"]


def test_update_sets_each_pair(core: ModuleType) -> None:
    headers = sample()
    core.header_update(headers, {"x-dup": "u", "x-a": "b"})
    core.header_update(headers, [("x-b", b"c")])
    assert core.header_getlist(headers, "x-dup") == [b"u"]
    assert core.header_get(headers, "x-a") == b"b"
    assert core.header_get(headers, "x-b") == b"c"


def test_items_keys_values_decode_latin1(core: ModuleType) -> None:
    headers = [(b"a", b"caf\xe9")]
    assert core.header_items(headers) == [("a", "café")]
    assert core.header_keys(headers) == ["a"]
    assert core.header_values(headers) == ["café"]


def test_add_vary_header_joins(core: ModuleType) -> None:
    headers: list[tuple[bytes, bytes]] = []
    core.add_vary_header(headers, "Accept-Encoding")
    core.add_vary_header(headers, "Origin")
    assert headers == [(b"vary", b"Accept-Encoding, Origin")]


@pytest.mark.parametrize(
    "ops",
    [
        [("set", "x-a", "1"), ("append", "x-a", "2"), ("set", "x-a", "3")],
        [("append", "set-cookie", "a"), ("append", "set-cookie", "b"), ("delete", "set-cookie", "")],
        [("setdefault", "x", "1"), ("setdefault", "x", "2"), ("vary", "", "A"), ("vary", "", "B")],
    ],
)
def test_same_results_as_starlette_mutable_headers(core: ModuleType, ops: list[tuple[str, str, str]]) -> None:
    ours: list[tuple[bytes, bytes]] = [(b"x-a", b"0"), (b"x", b"q")]
    theirs = StarletteMutableHeaders(raw=list(ours))
    for op, name, value in ops:
        if op == "set":
            core.header_set(ours, name, value)
            theirs[name] = value
        elif op == "append":
            core.header_append(ours, name, value)
            theirs.append(name, value)
        elif op == "delete":
            core.header_delete(ours, name)
            del theirs[name]
        elif op == "setdefault":
            assert core.header_setdefault(ours, name, value).decode() == theirs.setdefault(name, value)
        elif op == "vary":
            core.add_vary_header(ours, value)
            theirs.add_vary_header(value)
    assert ours == theirs.raw


@pytest.mark.parametrize("bad", ["a\r\nb", "a\nb", "a\x00b", "a\x7fb", b"a\rb", "x\x01"])
def test_control_characters_in_values_are_refused(core: ModuleType, bad: str | bytes) -> None:
    headers: list[tuple[bytes, bytes]] = []
    with pytest.raises(ValueError, match="control characters"):
        core.header_set(headers, "x-a", bad)
    with pytest.raises(ValueError, match="control characters"):
        core.header_append(headers, "x-a", bad)
    assert headers == []


def test_tab_and_obs_text_are_allowed_in_values(core: ModuleType) -> None:
    headers: list[tuple[bytes, bytes]] = []
    core.header_set(headers, "x-a", "a\tb\xe9")
    assert headers == [(b"x-a", b"a\tb\xe9")]


@pytest.mark.parametrize("bad", ["", "a b", "a:b", "a\r\nb", "x\x00", "é", b"a\nb", "(x)"])
def test_non_token_names_are_refused(core: ModuleType, bad: str | bytes) -> None:
    with pytest.raises(ValueError, match="header name"):
        core.header_set([], bad, "v")


def test_non_latin1_is_a_clear_value_error(core: ModuleType) -> None:
    with pytest.raises(ValueError, match="not latin-1 encodable"):
        core.header_set([], "x-a", "snow ☃")
    with pytest.raises(ValueError, match="not latin-1 encodable"):
        core.header_get([], "☃")


def test_long_values_are_shortened_in_messages(core: ModuleType) -> None:
    with pytest.raises(ValueError) as info:
        core.encode_header_value("x" * 10_000 + "\n")
    assert len(str(info.value)) < 200
    assert "..." in str(info.value)


@pytest.mark.parametrize("bad", [None, 1, 1.5, bytearray(b"a")])
def test_wrong_types_are_type_errors(core: ModuleType, bad: object) -> None:
    with pytest.raises(TypeError, match="must be str or bytes"):
        core.header_set([], bad, "v")
    with pytest.raises(TypeError, match="must be str or bytes"):
        core.header_set([], "x", bad)


def test_mutation_needs_a_list(core: ModuleType) -> None:
    with pytest.raises(TypeError, match="headers must be a list, not tuple"):
        core.header_set(((b"a", b"b"),), "a", "c")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ((b"a",), "must have 2 items, not 1"),
        ((b"a", b"b", b"c"), "must have 2 items, not 3"),
        ("ab", "must be a (name, value) pair, not str"),
        (("a", b"b"), "header name must be bytes, not str"),
        ((b"a", 1), "header value must be bytes, not int"),
    ],
)
def test_malformed_entries_are_clear_type_errors(core: ModuleType, entry: object, message: str) -> None:
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        core.header_get([entry], "a")


def test_reads_accept_tuples_lists_and_iterables(core: ModuleType) -> None:
    pairs = [[b"a", b"1"], (b"b", b"2")]
    assert core.header_get(tuple(pairs), "b") == b"2"
    assert core.header_get(iter(pairs), "a") == b"1"
    assert core.header_getlist((p for p in pairs), "b") == [b"2"]


def test_message_headers_normalises_in_place(core: ModuleType) -> None:
    message: dict[str, object] = {"type": "http.response.start", "headers": ((b"a", b"1"),)}
    headers = core.message_headers(message)
    assert headers == [(b"a", b"1")]
    assert message["headers"] is headers
    assert core.message_headers(message) is headers
    empty: dict[str, object] = {"type": "http.response.start"}
    assert core.message_headers(empty) == [] and empty["headers"] == []
    with pytest.raises(TypeError, match="'headers' must be a list or tuple, not str"):
        core.message_headers({"headers": "x"})
    with pytest.raises(TypeError, match="ASGI message must be a dict, not list"):
        core.message_headers([])


def test_mutable_headers_view_writes_through_to_the_message(core: ModuleType) -> None:
    message = {"type": "http.response.start", "status": 200, "headers": [(b"Content-Type", b"a")]}
    view = core.MutableHeaders(scope=message)
    assert issubclass(type(view), StarletteMutableHeaders)
    assert view["content-type"] == "a"
    assert view.get("CONTENT-TYPE") == "a" and view.get("nope", "d") == "d"
    view["x-id"] = "1"
    view.append("set-cookie", "a")
    view.append("set-cookie", "b")
    view.setdefault("x-id", "2")
    view.add_vary_header("Origin")
    del view["content-type"]
    assert message["headers"] == [(b"x-id", b"1"), (b"set-cookie", b"a"), (b"set-cookie", b"b"), (b"vary", b"Origin")]
    assert view.getlist("Set-Cookie") == ["a", "b"]
    assert "X-ID" in view and "content-type" not in view
    with pytest.raises(KeyError):
        view["content-type"]
    with pytest.raises(ValueError, match="control characters"):
        view["x-bad"] = "a\r\nInjected: 1"
    copy = view.mutablecopy()
    copy["x-id"] = "changed"
    assert view["x-id"] == "1" and isinstance(copy, core.MutableHeaders)
    view.update({"x-a": "1"}, x_b="2")
    assert view["x-a"] == "1" and view["x_b"] == "2"
