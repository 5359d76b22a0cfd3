"""JSON-RPC 2.0 dispatch: bytes in, bytes (or nothing) out. No transport here.

Framing handled: one payload is one JSON text - a Request object, or a batch (an Array of them). Rules
follow the JSON-RPC 2.0 specification to the letter:

- invalid JSON -> one -32700 response with ``id: null``;
- valid JSON that is not a Request object -> -32600 (``id: null`` unless a valid id could be read);
- ``[]`` -> ONE -32600 object (not an array); a batch of invalid entries -> one error per entry;
- a notification (no ``id`` member) never gets a response, even on error; a batch of only notifications
  gives no response at all (``None``);
- ``"jsonrpc"`` must be exactly ``"2.0"``, ``method`` a string, ``params`` an Array or an Object;
- the id is echoed exactly (string, number or null).

Batch entries run concurrently (``asyncio.gather``) and responses keep the request order. An exception in
one call never affects another: every call turns its own failures into its own error object.

Error mapping, in order: an :class:`RpcError` raised by a handler goes out as is; else the composition
root's ErrorMapper may turn the exception into a code in -32000..-32099; else -32603 "Internal error" with
only ``data.error_id``, and the traceback is logged with that id (the exception's text may hold a secret).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from typing import Any

import structlog
from pydantic_core import to_json
from pydantic import BaseModel, ConfigDict

from integd.rpc.errors import (
    PARSE_ERROR,
    ErrorMapper,
    RpcError,
    internal_error,
    invalid_request,
    method_not_found,
    standard_error,
)
from integd.rpc.openrpc import build_openrpc
from integd.rpc.registry import CallContext, MethodRegistry, MethodSpec

CtxFactory = Callable[[str], CallContext]
_ABSENT = object()


class DiscoverParams(BaseModel):
    """rpc.discover takes no params (``[]``, ``{}`` or none)."""

    model_config = ConfigDict(extra="forbid")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _package_version() -> str:
    try:
        return metadata.version("integd")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


class Dispatcher:
    """Runs JSON-RPC payloads against a :class:`MethodRegistry`.

    Example:
        >>> import asyncio
        >>> from integd.identity import Principal
        >>> from structlog.testing import CapturingLogger
        >>> d = Dispatcher(MethodRegistry(), logger=CapturingLogger())
        >>> ctx = lambda rid: CallContext(Principal(0, "root", "admin"), None, rid)
        >>> asyncio.run(d.handle_payload(b'{"jsonrpc":"2.0","method":"nope","id":7}', ctx))
        b'{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":{"method":"nope"}},"id":7}'
    """

    def __init__(
        self,
        registry: MethodRegistry,
        error_mapper: ErrorMapper | None = None,
        logger: Any = None,
        *,
        title: str = "integd",
        version: str | None = None,
    ) -> None:
        self._registry = registry
        self._error_mapper = error_mapper
        self._log = logger if logger is not None else structlog.get_logger("integd.rpc")
        self._title = title
        self._version = version or _package_version()
        self.in_flight = 0  # calls currently executing a handler
        if "rpc.discover" not in registry:
            registry.add_builtin(
                "rpc.discover", DiscoverParams, dict[str, Any], self._discover,
                summary="The OpenRPC document describing every method of this daemon",
            )

    @property
    def registry(self) -> MethodRegistry:
        return self._registry

    async def _discover(self, ctx: CallContext, params: DiscoverParams) -> dict[str, Any]:
        return build_openrpc(self._registry, title=self._title, version=self._version)

    async def handle_payload(self, raw: bytes, ctx_factory: CtxFactory) -> bytes | None:
        """Answer one payload; ``None`` when nothing must be sent back (notifications only).

        ``ctx_factory(request_id)`` builds the CallContext for each call (the transport knows the principal
        and connection); it may raise :class:`RpcError` to refuse that call.
        """
        try:
            text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
            message = json.loads(text, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            return _encode(_error_response(standard_error(PARSE_ERROR), None))
        if isinstance(message, list):
            if not message:
                return _encode(_error_response(invalid_request("empty batch"), None))
            answers = await asyncio.gather(*(self._handle_one(m, ctx_factory) for m in message))
            kept = [a for a in answers if a is not None]
            return _encode_batch(kept) if kept else None
        answer = await self._handle_one(message, ctx_factory)
        return answer

    async def _handle_one(self, request: Any, ctx_factory: CtxFactory) -> bytes | None:
        """One Request object -> its encoded Response, or None for a notification."""
        problem, req_id = _check_request(request)
        if problem is not None:
            return _encode(_error_response(problem, req_id))
        is_notification = "id" not in request
        method = request["method"]
        request_id = uuid.uuid4().hex[:16]
        ctx: CallContext | None = None
        started = time.perf_counter()
        try:
            # The transport may refuse the call here (RpcError), e.g. while it shuts down.
            ctx = ctx_factory(request_id)
            result = await self._call(method, request.get("params"), ctx)
            response: dict[str, Any] = {"jsonrpc": "2.0", "result": result, "id": req_id}
            outcome = "ok"
        except RpcError as err:
            response = _error_response(err, req_id)
            outcome = f"error {err.code}"
        self._log.debug(
            "rpc.call", method=method, request_id=request_id, uid=ctx.principal.uid if ctx else None,
            duration_ms=round((time.perf_counter() - started) * 1000, 3), outcome=outcome,
            notification=is_notification,
        )
        if is_notification:
            return None
        return self._encode_or_internal(response, method, request_id, req_id)

    async def _call(self, method: str, params: Any, ctx: CallContext) -> Any:
        """Run the handler; every failure comes out as an RpcError."""
        try:
            spec = self._registry.get(method)
        except KeyError:
            raise method_not_found(method) from None
        bound = spec.bind_params(params)
        self.in_flight += 1
        try:
            value = await spec.handler(ctx, bound)
            return self._dump(spec, value)
        except RpcError:
            raise
        except Exception as exc:
            raise self._map_exception(exc, spec, ctx.request_id) from None
        finally:
            self.in_flight -= 1

    def _dump(self, spec: MethodSpec, value: Any) -> Any:
        return spec.dump_result(value)

    def _map_exception(self, exc: Exception, spec: MethodSpec, request_id: str) -> RpcError:
        if self._error_mapper is not None:
            try:
                mapped = self._error_mapper(exc)
            except Exception:
                error_id = uuid.uuid4().hex
                self._log.exception("rpc.error_mapper_failed", method=spec.name, error_id=error_id,
                                    request_id=request_id)
                return internal_error(error_id)
            if mapped is not None:
                return mapped
        error_id = uuid.uuid4().hex
        # The traceback goes to the log (local, protected); the caller only gets the id to quote.
        self._log.error("rpc.internal_error", method=spec.name, error_id=error_id, request_id=request_id,
                        exc_info=exc)
        return internal_error(error_id)

    def _encode_or_internal(self, response: dict[str, Any], method: str, request_id: str,
                            req_id: Any) -> bytes:
        try:
            return _encode(response)
        except (TypeError, ValueError, RecursionError) as exc:
            error_id = uuid.uuid4().hex
            self._log.error("rpc.unencodable_response", method=method, error_id=error_id,
                            request_id=request_id, exc_info=exc)
            return _encode(_error_response(internal_error(error_id), req_id))


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return value is None or isinstance(value, (str, int, float))


def _check_request(request: Any) -> tuple[RpcError | None, Any]:
    """(problem, id to answer with). The id is echoed when it is itself valid, else null."""
    if not isinstance(request, dict):
        return invalid_request("a Request must be a JSON object"), None
    req_id = request.get("id", None)
    if not _valid_id(req_id):
        return invalid_request("id must be a string, a number or null"), None
    if request.get("jsonrpc", _ABSENT) != "2.0":
        return invalid_request('jsonrpc must be exactly "2.0"'), req_id
    if not isinstance(request.get("method", _ABSENT), str):
        return invalid_request("method must be a string"), req_id
    params = request.get("params", _ABSENT)
    if params is not _ABSENT and not isinstance(params, (dict, list)):
        return invalid_request("params must be an array or an object"), req_id
    return None, req_id


def _error_response(err: RpcError, req_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": err.to_dict(), "id": req_id}


def _encode(obj: Any) -> bytes:
    """Compact UTF-8 JSON, by pydantic-core's encoder (several times faster than json.dumps on big results).

    NaN and infinities cannot be sent as JSON numbers: they become null rather than invalid JSON.
    """
    return to_json(obj)


def _encode_batch(parts: list[bytes]) -> bytes:
    return b"[" + b",".join(parts) + b"]"


__all__ = ["CtxFactory", "DiscoverParams", "Dispatcher"]
