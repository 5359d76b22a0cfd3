"""The peer-credentials middleware refuses a connection whose uid cannot be read (HTTP 403)."""

from __future__ import annotations

import json
import socket
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from integd.identity import PrincipalResolver
from integd.rpc.dispatch import Dispatcher
from integd.rpc.registry import MethodRegistry
from integd.rpc.server import PRINCIPAL, RpcServer


class FakeTransport:
    """A transport whose extra info holds the given socket (or none at all)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._sock if name == "socket" else default

    def is_closing(self) -> bool:
        return False


async def reached(request: web.Request) -> web.Response:
    return web.json_response({"uid": request[PRINCIPAL].uid})


def server() -> RpcServer:
    return RpcServer(Dispatcher(MethodRegistry()), PrincipalResolver(daemon_uid=0))


async def test_no_socket_is_refused_with_403() -> None:
    request = make_mocked_request("POST", "/rpc", transport=FakeTransport(None))
    response = await server()._peer_middleware(request, reached)
    assert response.status == 403
    assert json.loads(response.body) == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32098, "message": "Peer credentials unavailable"}}


async def test_socket_without_peer_is_refused_with_403() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unconnected:
        request = make_mocked_request("POST", "/rpc", transport=FakeTransport(unconnected))
        response = await server()._peer_middleware(request, reached)
    assert response.status == 403


async def test_connected_peer_reaches_the_handler_with_its_principal() -> None:
    a, b = socket.socketpair()
    try:
        request = make_mocked_request("POST", "/rpc", transport=FakeTransport(a))
        response = await server()._peer_middleware(request, reached)
    finally:
        a.close()
        b.close()
    assert response.status == 200
