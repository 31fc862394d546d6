"""SendRecorder and ReceiveRecorder, against both core twins."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.helpers import Recorder, feeder, run

START = {"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]}


async def _send_all(wrapper: Any, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        await wrapper(message)


def test_records_a_streamed_response_without_buffering(core: ModuleType) -> None:
    downstream = Recorder()
    wrapper = core.SendRecorder(downstream)
    assert not wrapper.started and wrapper.status is None and wrapper.t_start > 0

    async def scenario() -> None:
        await wrapper(dict(START))
        assert wrapper.started and wrapper.status == 201 and not wrapper.complete
        for index in range(5):
            await wrapper({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
            # each chunk reaches the server before the next is produced: nothing is held back
            assert len(downstream.messages) == 2 + index
        await wrapper({"type": "http.response.body", "body": b"end"})

    run(scenario())
    assert wrapper.complete and wrapper.body_bytes == 53
    assert downstream.body == b"x" * 50 + b"end"
    assert wrapper.t_start <= wrapper.t_first_byte <= wrapper.t_last_byte
    assert wrapper.headers == [(b"content-type", b"text/plain")]


def test_registered_headers_are_applied_on_start(core: ModuleType) -> None:
    downstream = Recorder()
    seen: list[int] = []
    wrapper = core.SendRecorder(downstream, on_start=lambda rec, msg: seen.append(msg["status"]))
    wrapper.add_header("X-Request-ID", "abc")
    wrapper.set_header("content-type", "application/json")
    wrapper.add_header("set-cookie", "a=1")
    run(_send_all(wrapper, [{**START, "headers": [(b"content-type", b"text/plain"), (b"set-cookie", b"s=0")]}]))
    assert downstream.headers == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"s=0"),
        (b"x-request-id", b"abc"),
        (b"set-cookie", b"a=1"),
    ]
    assert seen == [201]


def test_start_without_headers_gets_a_list(core: ModuleType) -> None:
    downstream = Recorder()
    wrapper = core.SendRecorder(downstream)
    wrapper.add_header("x-a", "1")
    run(_send_all(wrapper, [{"type": "http.response.start", "status": 204}]))
    assert downstream.headers == [(b"x-a", b"1")]


def test_registering_an_unsafe_header_fails_at_once(core: ModuleType) -> None:
    wrapper = core.SendRecorder(Recorder())
    with pytest.raises(ValueError, match="control characters"):
        wrapper.add_header("x-a", "1\r\nx-b: 2")
    with pytest.raises(ValueError, match="header name"):
        wrapper.set_header("x a", "1")


def test_second_start_is_refused(core: ModuleType) -> None:
    downstream = Recorder()
    wrapper = core.SendRecorder(downstream)
    run(_send_all(wrapper, [dict(START)]))
    with pytest.raises(RuntimeError, match=r"http\.response\.start was already sent"):
        wrapper(dict(START))
    assert len(downstream.messages) == 1


@pytest.mark.parametrize(
    ("message", "error", "text"),
    [
        ({"type": "http.response.start"}, TypeError, "'status' must be an int, not NoneType"),
        ({"type": "http.response.start", "status": "200"}, TypeError, "'status' must be an int, not str"),
        ({"type": "http.response.start", "status": 200, "headers": "x"}, TypeError, "'headers' must be a list"),
        ({"type": "http.response.body", "body": "text"}, TypeError, "'body' must be bytes, not str"),
    ],
)
def test_malformed_messages_are_clear_errors(core: ModuleType, message: dict[str, Any], error: type, text: str) -> None:
    wrapper = core.SendRecorder(Recorder())
    with pytest.raises(error, match=text):
        wrapper(message)
    with pytest.raises(TypeError, match="ASGI message must be a dict, not list"):
        wrapper([])


def test_other_messages_pass_through_untouched(core: ModuleType) -> None:
    downstream = Recorder()
    wrapper = core.SendRecorder(downstream)
    messages = [
        {"type": "http.response.pathsend", "path": "/x"},
        {"type": "http.response.trailers", "headers": [(b"a", b"b")]},
        {"type": "custom.extension", "data": object()},
    ]
    run(_send_all(wrapper, [dict(m) for m in messages]))
    assert downstream.messages == messages
    assert not wrapper.started and wrapper.body_bytes == 0


def test_websocket_accept_and_close(core: ModuleType) -> None:
    downstream = Recorder()
    wrapper = core.SendRecorder(downstream)
    wrapper.add_header("x-request-id", "abc")
    run(_send_all(wrapper, [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1011}]))
    assert downstream.messages[0]["headers"] == [(b"x-request-id", b"abc")]
    assert wrapper.accepted and not wrapper.started and wrapper.close_code == 1011


def test_downstream_errors_surface_to_the_caller(core: ModuleType) -> None:
    wrapper = core.SendRecorder(Recorder(fail_on="http.response.body"))
    with pytest.raises(OSError, match="client went away"):
        run(_send_all(wrapper, [dict(START), {"type": "http.response.body", "body": b"x"}]))


def test_receive_recorder_counts_and_caps_the_copy(core: ModuleType) -> None:
    chunks = [{"type": "http.request", "body": b"abcd", "more_body": True}, {"type": "http.request", "body": b"efgh"}]
    receiver = core.ReceiveRecorder(feeder(chunks, {"type": "http.disconnect"}), body_limit=6)

    async def scenario() -> list[dict[str, Any]]:
        return [await receiver(), await receiver(), await receiver()]

    got = run(scenario())
    assert got[:2] == chunks  # the app sees every byte: the copy consumes nothing
    assert receiver.body == b"abcdef" and receiver.body_truncated and receiver.body_bytes == 8
    assert receiver.disconnected
    receiver.release()
    assert receiver.body == b""


def test_receive_recorder_without_limit_keeps_nothing(core: ModuleType) -> None:
    receiver = core.ReceiveRecorder(feeder([{"type": "http.request", "body": b"abc"}]))
    run(receiver())
    assert receiver.body == b"" and receiver.body_truncated and receiver.body_bytes == 3
    with pytest.raises(ValueError, match="body_limit must be a non-negative int"):
        core.ReceiveRecorder(receiver, body_limit=-1)


@pytest.mark.parametrize("entry", [b"abc", ("a", b"b"), (b"a", None), (b"a",)])
def test_malformed_header_entries_are_refused_before_sending(core: ModuleType, entry: object) -> None:
    downstream = Recorder()
    wrapper = core.SendRecorder(downstream)
    with pytest.raises(TypeError, match="ASGI header"):
        wrapper({"type": "http.response.start", "status": 200, "headers": [(b"ok", b"1"), entry]})
    assert downstream.messages == [] and not wrapper.started


def test_a_shared_header_list_is_never_edited_in_place(core: ModuleType) -> None:
    # A Starlette Response sends its own raw_headers list, and one error response often
    # serves every request: edits must go to a copy or they pile up across requests.
    shared = [(b"content-type", b"text/plain")]
    for _ in range(3):
        downstream = Recorder()
        wrapper = core.SendRecorder(downstream)
        wrapper.add_header("x-request-id", "abc")
        run(_send_all(wrapper, [{"type": "http.response.start", "status": 400, "headers": shared}]))
        assert downstream.headers == [(b"content-type", b"text/plain"), (b"x-request-id", b"abc")]
    assert shared == [(b"content-type", b"text/plain")]


def test_mutable_headers_over_a_scope_edit_a_copy_like_starlette(core: ModuleType) -> None:
    shared = [(b"a", b"1")]
    message = {"type": "http.response.start", "status": 200, "headers": shared}
    core.MutableHeaders(scope=message)["b"] = "2"
    assert shared == [(b"a", b"1")]
    assert message["headers"] == [(b"a", b"1"), (b"b", b"2")]
