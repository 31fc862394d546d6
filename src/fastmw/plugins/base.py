"""Plugin base classes (starlette-context's ``starlette_context.plugins.base``).

A plugin extracts one value from the request (stored in the context under its
``key``) and may enrich the response. What a plugin's overrides change is decided once,
when a middleware is built, in its ``PluginRoute`` (``_route()``): plugins that keep the
default hooks are read by a core reader straight from the raw ASGI headers;
overriding ``process_request`` or ``extract_value_from_header_by_key`` switches the
plugin to the compatible (slower) path that awaits them with a Starlette ``Request``.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Message

from fastmw._impl import core
from fastmw._route import AWAITED, CORE, SYNC, PluginRoute, overridden
from fastmw.ctx import context
from fastmw.errors import ConfigurationError, WrongUUIDError

__all__ = ["Plugin", "PluginUUIDBase"]

# A UUID header longer than this is refused before it is parsed (8 KiB).
MAX_UUID_HEADER = 8 * 1024
# Raw ASGI request headers, as in scope["headers"].
RawHeaders = Any
FastReader = Callable[[RawHeaders], Any]

_header_get = core.header_get
_is_uuid = core.is_uuid
_is_header_value = core.is_header_value
_new_request_id = core.new_request_id
# The hooks a plugin reads its value with: overriding one means awaiting them.
READ_HOOKS = ("process_request", "extract_value_from_header_by_key")


def lookup_key(key: str) -> bytes:
    """The lower-cased latin-1 bytes raw headers are searched with."""
    return key.lower().encode("latin-1")


def echoable_uuid_header(value: str) -> bool:
    """Whether an unvalidated UUID header may be stored and echoed (bounded, no CR/LF/NUL)."""
    return len(value) <= MAX_UUID_HEADER and core.is_header_value(value)


def valid_uuid_header(value: str) -> bool:
    """Whether ``uuid.UUID`` accepts ``value`` and it is safe to echo (bounded, printable)."""
    # uuid.UUID (via int()) tolerates surrounding whitespace, so CR/LF/NUL can
    # hide in an accepted value: isprintable() refuses every control character.
    return len(value) <= MAX_UUID_HEADER and _is_uuid(value) and value.isprintable()


class Plugin(metaclass=abc.ABCMeta):
    """Extracts one thing from the request; ``key`` names the header (and the context key)."""

    key: str

    async def extract_value_from_header_by_key(self, request: Request | HTTPConnection) -> Any | None:
        """The value of the ``key`` header, or None."""
        return request.headers.get(self.key)

    async def process_request(self, request: Request | HTTPConnection) -> Any | None:
        """Runs on every request; returns the value stored under ``key``."""
        if not isinstance(self.key, str):
            raise ConfigurationError(f"Plugin {self.__class__.__name__} is missing a valid key.")
        return await self.extract_value_from_header_by_key(request)

    async def enrich_response(self, arg: Response | Message) -> None:  # noqa: B027 - optional hook
        """Runs once per response (on its start message); does nothing by default."""

    # ----------------------------------------------------------------- decided once, per middleware

    def _route(self) -> PluginRoute:
        """How this plugin is served: its overridden hooks decide (``docs/middleware.md``)."""
        hooks = overridden(type(self), Plugin, (*READ_HOOKS, "enrich_response"))
        return PluginRoute(
            read=AWAITED if hooks.intersection(READ_HOOKS) else CORE, enrich="enrich_response" in hooks, hooks=hooks
        )

    def _reader(self, route: PluginRoute, core: ModuleType) -> FastReader:
        """The sync ``(raw_headers) -> value`` equivalent to ``process_request`` on ``core``
        (for a route that does not await)."""
        return core.HeaderReader(self.key)  # type: ignore[no-any-return]


class PluginUUIDBase(Plugin):
    """A plugin whose value is a UUID: taken from the header or generated, validated, echoed."""

    uuid_functions_mapper: ClassVar[dict[int, Callable[[], uuid.UUID]]] = {4: uuid.uuid4}

    def __init__(
        self,
        force_new_uuid: bool = False,
        version: int = 4,
        validate: bool = True,
        error_response: Response | None = None,
    ) -> None:
        if version not in self.uuid_functions_mapper:
            raise ConfigurationError(f"UUID version {version} is not supported.")
        self.force_new_uuid = force_new_uuid
        self.version = version
        self.validate = validate
        self.error_response = error_response

    def validate_uuid(self, uuid_to_validate: str) -> None:
        """Raise ``WrongUUIDError`` unless the value is a well-formed UUID (any form, any version)."""
        if not valid_uuid_header(uuid_to_validate):
            raise WrongUUIDError("Wrong uuid", error_response=self.error_response)

    def get_new_uuid(self) -> str:
        """A new UUID as 32 hex characters."""
        if self.version == 4 and self.uuid_functions_mapper[4] is uuid.uuid4:
            return _new_request_id()
        return self.uuid_functions_mapper[self.version]().hex

    def _check_unvalidated(self, value: str) -> None:
        # Even with validate=False a value that cannot be echoed safely is refused.
        if not echoable_uuid_header(value):
            raise WrongUUIDError("Wrong uuid", error_response=self.error_response)

    async def extract_value_from_header_by_key(self, request: Request | HTTPConnection) -> str | None:
        value = await super().extract_value_from_header_by_key(request)
        if self.force_new_uuid or not value:
            value = self.get_new_uuid()
        if self.validate:
            self.validate_uuid(value)
        else:
            self._check_unvalidated(value)
        return value

    async def enrich_response(self, arg: Any) -> None:
        """Echo the context value: set on a Response, appended to a start message (None: nothing).

        Only called when a subclass's override calls it (``super()``); otherwise the context
        stage echoes the value, read at the same moment, with the same checks."""
        stored = context.get(self.key)
        if stored is None:
            return  # as the core stage does: no "None" header
        value = stored if type(stored) is str else str(stored)
        if not _is_header_value(value):
            return  # as the core stage does: nothing that cannot be a header value
        if isinstance(arg, Response):
            arg.headers[self.key] = value
        elif arg["type"] in ("http.response.start", "websocket.accept"):
            MutableHeaders(scope=arg).append(self.key, value)

    def _route(self) -> PluginRoute:
        hooks = overridden(type(self), Plugin, ("process_request",)) | overridden(
            type(self),
            PluginUUIDBase,
            (
                "extract_value_from_header_by_key",
                "get_new_uuid",
                "validate_uuid",
                "_check_unvalidated",
                "enrich_response",
            ),
        )
        if hooks.intersection(READ_HOOKS):
            read = AWAITED
        elif hooks.intersection(("get_new_uuid", "validate_uuid", "_check_unvalidated")) or not self._core_uuids():
            read = SYNC
        else:
            read = CORE
        custom_echo = "enrich_response" in hooks
        return PluginRoute(read=read, echo=not custom_echo, enrich=custom_echo, hooks=hooks)

    def _core_uuids(self) -> bool:
        """Whether new values are the core's UUID4s (version 4 from ``uuid.uuid4``)."""
        return self.version == 4 and self.uuid_functions_mapper[4] is uuid.uuid4

    def _reader(self, route: PluginRoute, core: ModuleType) -> FastReader:
        if route.read == SYNC:
            return self._read_with_hooks
        # The core reads, validates or generates the value; only a refusal calls back.
        readers: dict[str, Any] = self.__dict__.setdefault("_uuid_readers", {})
        reader = readers.get(core.__name__)
        if reader is None:
            reader = readers[core.__name__] = core.UUIDHeaderReader(
                self.key, max_length=MAX_UUID_HEADER, on_invalid=self._wrong_uuid
            )
        reader.force_new = bool(self.force_new_uuid)
        reader.validate = bool(self.validate)
        return reader  # type: ignore[no-any-return]

    def __setattr__(self, name: str, value: Any) -> None:
        # starlette-context reads these on every request: keep the core reader in step.
        super().__setattr__(name, value)
        if name in ("force_new_uuid", "validate"):
            for reader in self.__dict__.get("_uuid_readers", {}).values():
                setattr(reader, "force_new" if name == "force_new_uuid" else "validate", bool(value))

    def _wrong_uuid(self, value: str) -> str:
        raise WrongUUIDError("Wrong uuid", error_response=self.error_response)

    def _read_with_hooks(self, headers: RawHeaders) -> str:
        raw = None if self.force_new_uuid else _header_get(headers, lookup_key(self.key))
        value = raw.decode("latin-1") if raw else self.get_new_uuid()
        if self.validate:
            self.validate_uuid(value)
        else:
            self._check_unvalidated(value)
        return value
