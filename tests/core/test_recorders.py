"""SendRecorder and ReceiveRecorder, against both core twins."""

from __future__ import annotations

from types import MappingProxyType, ModuleType
from typing import Any

import pytest

from fastmw.types import Message
from tests.helpers import Recorder, feeder, run

START = {"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]}


async def _send_all(wrapper: Any, messages: list[Message]) -> None:
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


def test_without_start_steps_the_header_list_goes_on_as_sent(core: ModuleType) -> None:
    # Alone (or in a pipeline whose stages edit nothing) the recorder copies nothing.
    shared = [(b"content-type", b"text/plain")]
    downstream = Recorder()
    wrapper = core.SendRecorder(downstream)
    run(_send_all(wrapper, [{"type": "http.response.start", "status": 400, "headers": shared}]))
    assert wrapper.headers is shared and downstream.messages[0]["headers"] is shared
    assert shared == [(b"content-type", b"text/plain")]


@pytest.mark.parametrize("headers", [None, "missing", ((b"a", b"1"),)])
def test_a_start_without_a_header_list_gets_one(core: ModuleType, headers: Any) -> None:
    downstream = Recorder()
    wrapper = core.SendRecorder(downstream)
    message: dict[str, Any] = {"type": "http.response.start", "status": 204}
    if headers != "missing":
        message["headers"] = headers
    run(_send_all(wrapper, [message]))
    assert wrapper.headers == downstream.headers == list(headers if isinstance(headers, tuple) else ())
    assert type(downstream.messages[0]["headers"]) is list


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
    messages: list[Message] = [
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
    accept = {"type": "websocket.accept", "headers": [(b"x-a", b"1")]}
    run(_send_all(wrapper, [accept, {"type": "websocket.close", "code": 1011}]))
    assert wrapper.headers == [(b"x-a", b"1")] and downstream.messages[0] == accept
    assert wrapper.accepted and not wrapper.started and wrapper.close_code == 1011
    assert wrapper.status is None and wrapper.t_start <= wrapper.t_first_byte <= wrapper.t_last_byte
    closed = core.SendRecorder(Recorder())
    run(_send_all(closed, [{"type": "websocket.close"}]))
    assert closed.close_code == 1000 and not closed.accepted


def test_a_websocket_denial_is_a_response(core: ModuleType) -> None:
    wrapper = core.SendRecorder(Recorder())
    denial: list[Message] = [
        {"type": "websocket.http.response.start", "status": 403, "headers": []},
        {"type": "websocket.http.response.body", "body": b"no", "more_body": True},
        {"type": "websocket.http.response.body", "body": bytearray(b"!")},
    ]
    run(_send_all(wrapper, denial))
    assert wrapper.started and wrapper.status == 403 and wrapper.complete and wrapper.body_bytes == 3
    with pytest.raises(RuntimeError, match=r"^websocket\.http\.response\.start was already sent for this request$"):
        wrapper({"type": "websocket.http.response.start", "status": 403})


def test_send_returns_what_the_servers_send_returns(core: ModuleType) -> None:
    marker = object()
    wrapper = core.SendRecorder(lambda message: marker)
    for message in [dict(START), {"type": "http.response.body", "body": b""}, {"type": "other"}]:
        assert wrapper(message) is marker


def test_a_dict_subclass_is_read_by_its_items(core: ModuleType) -> None:
    # As message_headers reads them, in both twins: a subclass's own get() is not consulted.
    class Sneaky(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            return "http.response.body" if key == "type" else dict.get(self, key, default)

    wrapper = core.SendRecorder(lambda message: None)
    wrapper(Sneaky(type="http.response.start", status=200, headers=[]))
    assert wrapper.started and not wrapper.complete


def test_downstream_errors_surface_to_the_caller(core: ModuleType) -> None:
    wrapper = core.SendRecorder(Recorder(fail_on="http.response.body"))
    with pytest.raises(OSError, match="client went away"):
        run(_send_all(wrapper, [dict(START), {"type": "http.response.body", "body": b"x"}]))


def test_receive_recorder_counts_and_caps_the_copy(core: ModuleType) -> None:
    chunks: list[Message] = [
        {"type": "http.request", "body": b"abcd", "more_body": True},
        {"type": "http.request", "body": b"efgh"},
    ]
    receiver = core.ReceiveRecorder(feeder(chunks, {"type": "http.disconnect"}), body_limit=6)

    async def scenario() -> list[dict[str, Any]]:
        return [await receiver(), await receiver(), await receiver()]

    got = run(scenario())
    assert got[:2] == chunks  # the app sees every byte: the copy consumes nothing
    assert receiver.body == b"abcdef" and receiver.body_truncated and receiver.body_bytes == 8
    assert receiver.disconnected
    receiver.release()
    assert receiver.body == b""


def test_receive_recorder_reads_any_mapping_a_server_gives(core: ModuleType) -> None:
    # Both twins read a received message through its own get(): a mapping that is not a dict
    # is counted, not refused (the pure twin used to require an exact dict here).
    message = MappingProxyType({"type": "http.request", "body": b"abc", "more_body": False})

    async def receive() -> Message:
        return message  # type: ignore[return-value]  # read-only: what a server should not send, yet may

    receiver = core.ReceiveRecorder(receive, body_limit=2)
    assert run(receiver()) is message
    assert receiver.body_bytes == 3 and receiver.body == b"ab" and receiver.body_truncated


def test_receive_recorder_without_limit_keeps_nothing(core: ModuleType) -> None:
    receiver = core.ReceiveRecorder(feeder([{"type": "http.request", "body": b"abc"}]))
    run(receiver())
    assert receiver.body == b"" and receiver.body_truncated and receiver.body_bytes == 3
    with pytest.raises(ValueError, match="body_limit must be a non-negative int"):
        core.ReceiveRecorder(receiver, body_limit=-1)


def test_mutable_headers_over_a_scope_edit_a_copy_like_starlette(core: ModuleType) -> None:
    shared = [(b"a", b"1")]
    message = {"type": "http.response.start", "status": 200, "headers": shared}
    core.MutableHeaders(scope=message)["b"] = "2"
    assert shared == [(b"a", b"1")]
    assert message["headers"] == [(b"a", b"1"), (b"b", b"2")]
