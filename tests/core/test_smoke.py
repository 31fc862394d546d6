from types import ModuleType


def test_get_is_case_insensitive(core: ModuleType) -> None:
    headers = [(b"Content-Type", b"text/plain"), (b"x-a", b"1")]
    assert core.header_get(headers, "content-type") == b"text/plain"
    assert core.header_get(headers, b"X-A") == b"1"
    assert core.header_get(headers, "missing") is None
