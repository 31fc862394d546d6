"""Built-in plugins (starlette-context's ``starlette_context.plugins``)."""

from fastmw.plugins.api_key import ApiKeyPlugin
from fastmw.plugins.base import Plugin, PluginUUIDBase
from fastmw.plugins.correlation_id import CorrelationIdPlugin
from fastmw.plugins.date_header import DateHeaderPlugin
from fastmw.plugins.forwarded_for import ForwardedForPlugin
from fastmw.plugins.request_id import RequestIdPlugin
from fastmw.plugins.user_agent import UserAgentPlugin

__all__ = [
    "ApiKeyPlugin",
    "CorrelationIdPlugin",
    "DateHeaderPlugin",
    "ForwardedForPlugin",
    "Plugin",
    "PluginUUIDBase",
    "RequestIdPlugin",
    "UserAgentPlugin",
]
