"""``DateHeaderPlugin``: parses the RFC 1123 ``Date`` request header."""

from __future__ import annotations

import datetime
from types import ModuleType
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from fastmw._impl import core
from fastmw._route import AWAITED, SYNC, PluginRoute, overridden
from fastmw.errors import DateFormatError
from fastmw.header_keys import HeaderKeys
from fastmw.plugins.base import FastReader, Plugin, RawHeaders, lookup_key

__all__ = ["DateHeaderPlugin"]

RFC1123_FORMAT = "%a, %d %b %Y %H:%M:%S"
# "Wed, 01 Jan 2020 04:27:12" is 25 characters; only " GMT" (or nothing) may follow.
RFC1123_LENGTH = 25
WRONG_FORMAT_MESSAGE = "Date header in wrong format, has to match rfc1123."

_header_get = core.header_get


class DateHeaderPlugin(Plugin):
    """Stores the ``Date`` header as a naive (GMT) datetime, or None when absent."""

    key = HeaderKeys.date

    def __init__(self, *args: Any, error_response: Response | None = Response(status_code=400)) -> None:  # noqa: B008
        super().__init__(*args)
        self.error_response = error_response

    @staticmethod
    def rfc1123_to_dt(s: str) -> datetime.datetime:
        """Parse ``Wed, 01 Jan 2020 04:27:12`` (no zone)."""
        return datetime.datetime.strptime(s, RFC1123_FORMAT)

    def _parse(self, rfc1123: str | None) -> datetime.datetime | None:
        if not rfc1123:
            return None
        stamp, rest = rfc1123[:RFC1123_LENGTH], rfc1123[RFC1123_LENGTH:]
        if rest.strip() not in ("", "GMT"):
            raise DateFormatError(WRONG_FORMAT_MESSAGE, error_response=self.error_response)
        try:
            return self.rfc1123_to_dt(stamp.strip())
        except ValueError as exc:
            raise DateFormatError(str(exc), error_response=self.error_response) from None

    async def process_request(self, request: Request | HTTPConnection) -> datetime.datetime | None:
        """The header as a datetime (``Wed, 01 Jan 2020 04:27:12 GMT`` or without ``GMT``)."""
        return self._parse(await self.extract_value_from_header_by_key(request))

    def _route(self) -> PluginRoute:
        hooks = overridden(type(self), DateHeaderPlugin, ("process_request",)) | overridden(
            type(self), Plugin, ("extract_value_from_header_by_key", "enrich_response")
        )
        read = AWAITED if hooks.intersection(("process_request", "extract_value_from_header_by_key")) else SYNC
        return PluginRoute(read=read, enrich="enrich_response" in hooks, hooks=hooks)

    def _reader(self, route: PluginRoute, core: ModuleType) -> FastReader:
        lookup = lookup_key(self.key)
        parse = self._parse

        def read(headers: RawHeaders) -> datetime.datetime | None:
            raw = _header_get(headers, lookup)
            return None if raw is None else parse(raw.decode("latin-1"))

        return read
