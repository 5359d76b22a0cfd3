"""integd's JSON-RPC 2.0 stack: error table, method registry, dispatcher, OpenRPC document, Unix-socket server.

Layers (each importing only those above it)::

    errors     the code table and RpcError
    registry   MethodRegistry, MethodSpec, CallContext
    openrpc    build_openrpc(registry)
    dispatch   Dispatcher: bytes in, bytes out, no transport
    server     RpcServer, RpcConnection: aiohttp on a Unix socket, peer identity per connection
"""

from integd.rpc.dispatch import Dispatcher
from integd.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PEER_UNKNOWN,
    SHUTTING_DOWN,
    ErrorMapper,
    RpcError,
    invalid_params_from,
)
from integd.rpc.openrpc import build_openrpc
from integd.rpc.registry import CallContext, MethodRegistry, MethodSpec
from integd.rpc.server import RpcConnection, RpcServer, SocketInUse

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "PEER_UNKNOWN",
    "SHUTTING_DOWN",
    "CallContext",
    "Dispatcher",
    "ErrorMapper",
    "MethodRegistry",
    "MethodSpec",
    "RpcConnection",
    "RpcError",
    "RpcServer",
    "SocketInUse",
    "build_openrpc",
    "invalid_params_from",
]
