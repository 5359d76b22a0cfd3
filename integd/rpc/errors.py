"""The one table of JSON-RPC 2.0 error codes used by integd, and the error type that carries them.

Exception hierarchy::

    Exception
    └── RpcError(code, message, data)   an error object that will be sent to the caller as is

Codes (JSON-RPC 2.0 specification, "Error object"):

    -32700  Parse error        the payload is not valid JSON
    -32600  Invalid Request    valid JSON, but not a Request object (or an empty batch, or a body too large)
    -32601  Method not found   the method does not exist
    -32602  Invalid params     the params do not validate against the method's params model
    -32603  Internal error     anything the server did not expect; the caller gets only an error_id
    -32000..-32099             implementation-defined server errors: the composition root's ErrorMapper
                               maps domain exceptions into this range. integd's transport reserves
                               the top two for itself:
    -32099  SHUTTING_DOWN      the daemon is draining and takes no new calls
    -32098  PEER_UNKNOWN       the kernel gave no peer credentials for the connection (HTTP 403)

Trust model for messages: the text of an unexpected exception never reaches the caller (it may hold a
token or a key); the caller gets ``data={"error_id": ...}`` and the traceback is logged under that id.
Validation errors carry locations, types and messages, never the offending input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR_MIN = -32099
SERVER_ERROR_MAX = -32000
SHUTTING_DOWN = -32099
PEER_UNKNOWN = -32098

STANDARD_MESSAGES: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    SHUTTING_DOWN: "integd is shutting down",
    PEER_UNKNOWN: "Peer credentials unavailable",
}


class RpcError(Exception):
    """A JSON-RPC error object: ``code``, ``message`` and optional JSON-able ``data``.

    ``str(err)`` is the message. Raise it from a handler to answer with exactly this error.

    Example:
        >>> err = RpcError(-32001, "Rate limited", {"retry_after": 12.5})
        >>> err.to_dict()
        {'code': -32001, 'message': 'Rate limited', 'data': {'retry_after': 12.5}}
    """

    def __init__(self, code: int, message: str, data: object | None = None) -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"JSON-RPC error code must be an int, got {type(code).__name__}")
        if not isinstance(message, str) or not message:
            raise ValueError("JSON-RPC error message must be a non-empty string")
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"RpcError({self.code}, {self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        """The error object as it appears in a Response (``data`` only when not None)."""
        obj: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            obj["data"] = self.data
        return obj


ErrorMapper = Callable[[BaseException], "RpcError | None"]
"""Maps a domain exception to an RpcError (codes -32000..-32099), or None when it does not know it."""


def standard_error(code: int, data: object | None = None) -> RpcError:
    """An RpcError with the specification's message for ``code``.

    Example:
        >>> standard_error(PARSE_ERROR).message
        'Parse error'
    """
    return RpcError(code, STANDARD_MESSAGES[code], data)


def invalid_request(reason: str | None = None) -> RpcError:
    """-32600, with ``data={"reason": ...}`` saying which rule the request broke."""
    return standard_error(INVALID_REQUEST, {"reason": reason} if reason else None)


def method_not_found(method: str) -> RpcError:
    """-32601, naming the method that was asked for."""
    return standard_error(METHOD_NOT_FOUND, {"method": method})


def internal_error(error_id: str) -> RpcError:
    """-32603 carrying only the id under which the real failure was logged."""
    return standard_error(INTERNAL_ERROR, {"error_id": error_id})


def invalid_params(message: str, loc: tuple[str | int, ...] = ("params",)) -> RpcError:
    """-32602 for a params problem found before model validation (for example too many positional params).

    Example:
        >>> invalid_params("expected at most 2 positional params, got 3").data["errors"][0]["loc"]
        ['params']
    """
    return standard_error(
        INVALID_PARAMS, {"errors": [{"type": "params_shape", "loc": list(loc), "msg": message}]}
    )


def invalid_params_from(exc: ValidationError) -> RpcError:
    """-32602 from a pydantic ValidationError: locations, types and messages, never the input values.

    Example:
        >>> from pydantic import BaseModel
        >>> class P(BaseModel):
        ...     n: int
        >>> try:
        ...     P.model_validate({"n": "x"})
        ... except ValidationError as e:
        ...     invalid_params_from(e).data["errors"][0]["loc"]
        ['params', 'n']
    """
    errors = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        errors.append({"type": err["type"], "loc": ["params", *err["loc"]], "msg": err["msg"]})
    return standard_error(INVALID_PARAMS, {"errors": errors})
