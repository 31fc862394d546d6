"""``RequestIdPlugin``: stores the request id (a UUID, generated when absent, echoed)."""

from __future__ import annotations

from fastmw.header_keys import HeaderKeys
from fastmw.plugins.base import PluginUUIDBase

__all__ = ["RequestIdPlugin"]


class RequestIdPlugin(PluginUUIDBase):
    """Stores the request id (a UUID, generated when absent, echoed) in the context."""

    key = HeaderKeys.request_id
