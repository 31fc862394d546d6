"""``CorrelationIdPlugin``: stores the correlation id (a UUID, generated when absent, echoed)."""

from __future__ import annotations

from fastmw.header_keys import HeaderKeys
from fastmw.plugins.base import PluginUUIDBase

__all__ = ["CorrelationIdPlugin"]


class CorrelationIdPlugin(PluginUUIDBase):
    """Stores the correlation id (a UUID, generated when absent, echoed) in the context."""

    key = HeaderKeys.correlation_id
