"""The table of RPC methods: name -> params model, result type, handler and documentation.

Each method has exactly one pydantic params model (``ConfigDict(extra="forbid")`` expected) and one result
type whose TypeAdapter is built once, at registration. JSON-RPC params may arrive by name (an object) or by
position (an array mapped onto the model's fields in declaration order); absent params mean ``{}``.

Errors raised here: ``ValueError``/``TypeError`` at registration time for a programming mistake (duplicate
or reserved name, params that are not a model); :class:`~integd.rpc.errors.RpcError` (-32602) from
:meth:`MethodSpec.bind_params` for params the caller got wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from integd.identity import Principal
from integd.rpc.errors import invalid_params, invalid_params_from

if TYPE_CHECKING:
    from integd.rpc.server import RpcConnection

Handler = Callable[["CallContext", Any], Awaitable[Any]]
RESERVED_PREFIX = "rpc."


@dataclass(frozen=True)
class CallContext:
    """What a handler knows about the call besides its params.

    ``connection`` is the caller's WebSocket (so a handler can send notifications), None over HTTP POST.
    """

    principal: Principal
    connection: RpcConnection | None
    request_id: str


@dataclass(frozen=True, slots=True)
class Prevalidated:
    """A JSON-ready result whose parts were already checked against the declared type where they were made.

    For hot listings built from a typed read model: the declared type still documents the result in
    ``rpc.discover``, but a thousand rows are not validated a second time on every call.
    """

    value: Any


@dataclass(frozen=True)
class MethodSpec:
    """One registered method."""

    name: str
    params: type[BaseModel]
    result: Any
    result_adapter: TypeAdapter[Any]
    handler: Handler
    summary: str
    description: str = ""
    errors: tuple[tuple[int, str], ...] = ()
    tags: tuple[str, ...] = ()
    field_names: tuple[str, ...] = field(default=())

    def bind_params(self, raw: dict[str, Any] | list[Any] | None) -> BaseModel:
        """Validate JSON-RPC params into the params model; RpcError(-32602) on failure.

        Example:
            >>> from pydantic import ConfigDict
            >>> class P(BaseModel):
            ...     model_config = ConfigDict(extra="forbid")
            ...     a: int
            ...     b: int = 0
            >>> reg = MethodRegistry()
            >>> @reg.method("add", P, int, summary="Add")
            ... async def add(ctx, p): return p.a + p.b
            >>> reg.get("add").bind_params([1, 2])
            P(a=1, b=2)
        """
        if raw is None:
            raw = {}
        elif isinstance(raw, list):
            if len(raw) > len(self.field_names):
                raise invalid_params(
                    f"{self.name} takes at most {len(self.field_names)} positional params, got {len(raw)}"
                )
            raw = dict(zip(self.field_names, raw))
        try:
            return self.params.model_validate(raw)
        except ValidationError as exc:
            raise invalid_params_from(exc) from None

    def dump_result(self, value: Any) -> Any:
        """The handler's return value, validated against the declared result type, as JSON-able Python.

        Handlers may return models or plain dicts and lists; either way the result is checked against the
        contract published by ``rpc.discover`` (a mismatch is a bug: a ValidationError, reported to the caller
        as an internal error without the value). The adapter is built once, at registration.
        """
        if isinstance(value, Prevalidated):
            return value.value
        adapter = self.result_adapter
        return adapter.dump_python(adapter.validate_python(value), mode="json")


class MethodRegistry:
    """Name -> :class:`MethodSpec`. The composition root registers methods; the Dispatcher looks them up.

    Example:
        >>> from pydantic import ConfigDict
        >>> class EchoParams(BaseModel):
        ...     model_config = ConfigDict(extra="forbid")
        ...     text: str
        >>> reg = MethodRegistry()
        >>> @reg.method("echo", EchoParams, str, summary="Return the text")
        ... async def echo(ctx, params):
        ...     return params.text
        >>> reg.names()
        ['echo']
    """

    def __init__(self) -> None:
        self._methods: dict[str, MethodSpec] = {}
        self.generation = 0  # bumped on every registration, so cached documents know they are stale

    def method(
        self,
        name: str,
        params: type[BaseModel],
        result: Any,
        *,
        summary: str,
        description: str = "",
        errors: Sequence[tuple[int, str]] = (),
        tags: Sequence[str] = (),
    ) -> Callable[[Handler], Handler]:
        """Decorator registering ``async def handler(ctx, params) -> result`` under ``name``."""

        def register(handler: Handler) -> Handler:
            self._add(name, params, result, handler, summary, description, errors, tags, internal=False)
            return handler

        return register

    def add_builtin(self, name: str, params: type[BaseModel], result: Any, handler: Handler, *,
                    summary: str, description: str = "") -> None:
        """Register an ``rpc.``-prefixed extension method (used by the Dispatcher for rpc.discover)."""
        self._add(name, params, result, handler, summary, description, (), (), internal=True)

    def _add(self, name: str, params: type[BaseModel], result: Any, handler: Handler, summary: str,
             description: str, errors: Sequence[tuple[int, str]], tags: Sequence[str], *,
             internal: bool) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("method name must be a non-empty string")
        if name.startswith(RESERVED_PREFIX) and not internal:
            raise ValueError(f"method name {name!r} is reserved: names starting 'rpc.' are extensions")
        if name in self._methods:
            raise ValueError(f"method {name!r} is already registered")
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise TypeError(f"params of {name!r} must be a pydantic BaseModel subclass, got {params!r}")
        if not callable(handler):
            raise TypeError(f"handler of {name!r} is not callable")
        for code, message in errors:
            if isinstance(code, bool) or not isinstance(code, int) or not isinstance(message, str):
                raise TypeError(f"errors of {name!r} must be (int code, str message) pairs")
        self._methods[name] = MethodSpec(
            name=name,
            params=params,
            result=result,
            result_adapter=TypeAdapter(result),
            handler=handler,
            summary=summary,
            description=description,
            errors=tuple((int(c), str(m)) for c, m in errors),
            tags=tuple(tags),
            field_names=tuple(_input_names(params)),
        )
        self.generation += 1

    def names(self) -> list[str]:
        """Registered method names, sorted."""
        return sorted(self._methods)

    def get(self, name: str) -> MethodSpec:
        """The spec for ``name``; ``KeyError`` when there is none."""
        return self._methods[name]

    def __contains__(self, name: object) -> bool:
        return name in self._methods


def _input_names(model: type[BaseModel]) -> list[str]:
    """Field names as the caller must spell them by name (the validation alias when there is one)."""
    names = []
    for fname, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        names.append(alias or fname)
    return names
