from fastmw.header_keys import HeaderKeys

EXPECTED = {
    "api_key": "X-API-Key",
    "correlation_id": "X-Correlation-ID",
    "request_id": "X-Request-ID",
    "date": "Date",
    "forwarded_for": "X-Forwarded-For",
    "user_agent": "User-Agent",
}


def test_members_and_values() -> None:
    assert {member.name: member.value for member in HeaderKeys} == EXPECTED


def test_str_format_and_equality_are_the_value() -> None:
    for member in HeaderKeys:
        assert str(member) == member.value
        assert f"{member}" == member.value
        assert f"{member:>20}" == f"{member.value:>20}"
        assert member == member.value
        assert {str(member.value): 1}[member] == 1
        assert isinstance(member, str)
