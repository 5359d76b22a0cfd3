"""RpcServer over a real Unix socket: HTTP and WebSocket framing, binding rules, shutdown, slow subscribers."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import BaseModel, ConfigDict

from integd.client import IntegdClient, IntegdSession, RpcCallError
from integd.identity import PrincipalResolver
from integd.rpc.dispatch import Dispatcher
from integd.rpc.registry import CallContext, MethodRegistry
from integd.rpc.server import RpcConnection, RpcServer, SocketInUse


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class FloodParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int
    size: int = 16


class Hooks:
    """Events the test methods set, so tests await them instead of sleeping."""

    def __init__(self) -> None:
        self.slow_started = asyncio.Event()
        self.slow_calls = 0
        self.two_slow_started = asyncio.Event()
        self.never = asyncio.Event()
        self.overflowed = asyncio.Event()


def make_dispatcher(hooks: Hooks) -> Dispatcher:
    reg = MethodRegistry()

    @reg.method("echo", EchoParams, str, summary="echo")
    async def echo(ctx: CallContext, p: EchoParams) -> str:
        return p.text

    @reg.method("whoami", NoParams, dict[str, Any], summary="the caller's principal")
    async def whoami(ctx: CallContext, p: NoParams) -> dict[str, Any]:
        pr = ctx.principal
        return {"uid": pr.uid, "user": pr.user, "kind": pr.kind, "ws": ctx.connection is not None}

    @reg.method("slow", NoParams, str, summary="takes a while (simulated work)")
    async def slow(ctx: CallContext, p: NoParams) -> str:
        hooks.slow_started.set()
        hooks.slow_calls += 1
        if hooks.slow_calls == 2:
            hooks.two_slow_started.set()
        await asyncio.sleep(0.2)
        return "finished"

    @reg.method("stuck", NoParams, str, summary="never finishes on its own")
    async def stuck(ctx: CallContext, p: NoParams) -> str:
        hooks.slow_started.set()
        await hooks.never.wait()
        return "unreachable"

    @reg.method("flood", FloodParams, int, summary="send notifications to the caller")
    async def flood(ctx: CallContext, p: FloodParams) -> int:
        assert ctx.connection is not None
        sent = 0
        for i in range(p.count):
            if not await ctx.connection.notify("tick", {"i": i, "pad": "x" * p.size}):
                hooks.overflowed.set()
                break
            sent += 1
        return sent

    return Dispatcher(reg, logger=None)


ServerFactory = Callable[..., Awaitable[tuple[RpcServer, Hooks]]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    servers: list[RpcServer] = []

    async def start(path: str | None = None, sock: socket.socket | None = None, **kw: Any
                    ) -> tuple[RpcServer, Hooks]:
        hooks = Hooks()
        server = RpcServer(make_dispatcher(hooks), PrincipalResolver(), **kw)
        if sock is None:
            await server.start(path=path or str(tmp_path / "integd.sock"))
        else:
            await server.start(sock=sock)
        servers.append(server)
        return server, hooks

    yield start
    for server in servers:
        await server.stop()


def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "integd.sock")


async def raw_post(path: str, body: bytes | Any, content_type: str = "application/json"
                   ) -> tuple[int, bytes]:
    data = io.BytesIO(body) if isinstance(body, bytes) else body  # aiohttp warns on big raw bytes
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as http:
        async with http.post("http://integd/rpc", data=data, headers={"Content-Type": content_type}) as r:
            return r.status, await r.read()


async def test_http_post_call_and_batch(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    async with IntegdClient(sock_path(tmp_path)) as client:
        assert await client.call("echo", {"text": "hi"}) == "hi"
        assert await client.call("echo", ["by position"]) == "by position"
        results = await client.batch([("echo", {"text": "a"}), ("nope", None), ("echo", {"text": "b"})])
        assert results[0] == "a" and results[2] == "b"
        assert isinstance(results[1], RpcCallError) and results[1].code == -32601


async def test_curl_style_form_content_type_is_accepted(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    status, body = await raw_post(sock_path(tmp_path), b'{"jsonrpc":"2.0","id":1,"method":"echo","params":["x"]}',
                                  "application/x-www-form-urlencoded")
    assert status == 200 and json.loads(body) == {"jsonrpc": "2.0", "result": "x", "id": 1}


async def test_notification_only_post_gets_204(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    status, body = await raw_post(sock_path(tmp_path), b'[{"jsonrpc":"2.0","method":"echo","params":["x"]}]')
    assert status == 204 and body == b""


async def test_oversized_body_is_413_and_the_daemon_keeps_serving(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    path = sock_path(tmp_path)
    status, body = await raw_post(path, b" " * (1024**2 + 1))
    assert status == 413
    assert json.loads(body) == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32600, "message": "Request body exceeds 1048576 bytes"}}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for _ in range(17):
            yield b" " * 65536

    status, _ = await raw_post(path, chunks())
    assert status == 413
    async with IntegdClient(path) as client:
        assert await client.call("echo", {"text": "still here"}) == "still here"


async def test_exactly_max_body_is_accepted(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    request = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":["ok"]}'
    status, body = await raw_post(sock_path(tmp_path), request + b" " * (1024**2 - len(request)))
    assert status == 200 and json.loads(body)["result"] == "ok"


async def test_socket_file_is_a_0660_socket(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    st = os.stat(sock_path(tmp_path))
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660


async def test_second_server_on_a_live_path_refuses_and_first_keeps_serving(
        serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    path = sock_path(tmp_path)
    second = RpcServer(make_dispatcher(Hooks()), PrincipalResolver())
    with pytest.raises(SocketInUse, match="another integd"):
        await second.start(path=path)
    async with IntegdClient(path) as client:
        assert await client.call("echo", {"text": "first"}) == "first"


async def test_stale_socket_file_is_replaced(serve: ServerFactory, tmp_path: Path) -> None:
    path = sock_path(tmp_path)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays, nobody listens: what a crashed daemon leaves behind
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    await serve()
    async with IntegdClient(path) as client:
        assert await client.call("echo", {"text": "replaced"}) == "replaced"


async def test_non_socket_file_at_the_path_is_refused(tmp_path: Path) -> None:
    path = sock_path(tmp_path)
    Path(path).write_text("precious")
    server = RpcServer(make_dispatcher(Hooks()), PrincipalResolver())
    with pytest.raises(FileExistsError, match="not a socket"):
        await server.start(path=path)
    assert Path(path).read_text() == "precious"


async def test_adopted_socket_is_served_and_never_unlinked(serve: ServerFactory, tmp_path: Path) -> None:
    path = sock_path(tmp_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    server, _ = await serve(sock=listener)
    async with IntegdClient(path) as client:
        assert await client.call("echo", {"text": "adopted"}) == "adopted"
    await server.stop()
    assert os.path.exists(path)


async def test_adopting_a_non_listening_or_tcp_socket_is_refused(tmp_path: Path) -> None:
    server = RpcServer(make_dispatcher(Hooks()), PrincipalResolver())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unbound:
        with pytest.raises(ValueError, match="not listening"):
            await server.start(sock=unbound)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        with pytest.raises(ValueError, match="AF_UNIX"):
            await server.start(sock=tcp)


async def test_websocket_calls_and_principal(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    session = await IntegdSession.connect(sock_path(tmp_path))
    try:
        results = await asyncio.gather(*(session.call("echo", {"text": str(i)}) for i in range(20)))
        assert results == [str(i) for i in range(20)]
        me = await session.call("whoami")
        assert me["uid"] == os.getuid() and me["kind"] == "admin" and me["ws"] is True
        with pytest.raises(RpcCallError) as info:
            await session.call("echo", {"wrong": 1})
        assert info.value.code == -32602
    finally:
        await session.close()


async def test_peer_principal_for_the_current_uid_over_http(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    async with IntegdClient(sock_path(tmp_path)) as client:
        me = await client.call("whoami")
    assert me["uid"] == os.getuid() and me["ws"] is False
    assert me["kind"] == "admin"  # the test process is the daemon's own uid


async def test_binary_frames_are_refused_with_an_error(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=sock_path(tmp_path))) as http:
        async with http.ws_connect("http://integd/rpc/ws") as ws:
            await ws.send_bytes(b'{"jsonrpc":"2.0","method":"echo","params":["x"],"id":1}')
            error = json.loads((await ws.receive()).data)
            assert error["error"]["code"] == -32600 and "binary" in error["error"]["data"]["reason"]
            await ws.send_str('{"jsonrpc":"2.0","method":"echo","params":["x"],"id":2}')
            assert json.loads((await ws.receive()).data)["result"] == "x"


async def test_notifications_reach_a_session(serve: ServerFactory, tmp_path: Path) -> None:
    await serve()
    session = await IntegdSession.connect(sock_path(tmp_path))
    try:
        assert await session.call("flood", {"count": 5}) == 5
        received = []
        async for method, params in session.notifications():
            received.append((method, params["i"]))
            if len(received) == 5:
                break
        assert received == [("tick", i) for i in range(5)]
    finally:
        await session.close()


async def test_slow_subscriber_overflow_closes_with_1008(serve: ServerFactory, tmp_path: Path) -> None:
    server, hooks = await serve(notify_queue_size=4)
    closed: list[RpcConnection] = []
    hook_ran = asyncio.Event()

    async def on_closed(conn: RpcConnection) -> None:  # hooks may be coroutines (subscription cleanup)
        closed.append(conn)
        hook_ran.set()

    server.on_connection_closed.append(on_closed)
    # A consumer that does not read its notifications: the session stops reading the socket once its
    # one-slot queue is full, the kernel buffers fill, and the daemon's bounded queue overflows.
    session = await IntegdSession.connect(sock_path(tmp_path), max_queued=1)
    call = asyncio.create_task(session.call("flood", {"count": 2000, "size": 65536}))
    await asyncio.wait_for(hooks.overflowed.wait(), 10)
    drained = 0
    async for _ in session.notifications():
        drained += 1
    assert session.close_code == 1008
    assert drained < 2000
    with pytest.raises(Exception) as info:
        await call
    assert "closed" in str(info.value)
    await session.close()
    await asyncio.wait_for(hook_ran.wait(), 5)
    assert len(closed) == 1 and closed[0].closed and not server.connections


async def test_stop_drains_in_flight_calls_closes_websockets_with_1001_and_removes_socket(
        serve: ServerFactory, tmp_path: Path) -> None:
    server, hooks = await serve()
    path = sock_path(tmp_path)
    session = await IntegdSession.connect(path)
    idle = await IntegdSession.connect(path)
    client = IntegdClient(path)
    try:
        http_call = asyncio.create_task(client.call("slow"))
        ws_call = asyncio.create_task(session.call("slow"))
        await hooks.two_slow_started.wait()
        assert server.in_flight == 2
        await server.stop()
        assert await http_call == "finished"
        assert await ws_call == "finished"  # answered before the socket went away
        async for _ in idle.notifications():
            raise AssertionError("no notification expected")
        assert idle.close_code == 1001 and session.close_code == 1001
        assert not os.path.exists(path)
        assert server.in_flight == 0
    finally:
        await client.close()
        await session.close()
        await idle.close()


async def test_stop_cancels_calls_that_outlive_the_shutdown_timeout(serve: ServerFactory, tmp_path: Path) -> None:
    server, hooks = await serve(shutdown_timeout=0.2)
    client = IntegdClient(sock_path(tmp_path))
    try:
        call = asyncio.create_task(client.call("stuck"))
        await hooks.slow_started.wait()
        await asyncio.wait_for(server.stop(), 5)
        with pytest.raises(RpcCallError) as info:
            await call
        assert info.value.code == -32099
    finally:
        await client.close()


async def test_calls_during_shutdown_are_refused(serve: ServerFactory, tmp_path: Path) -> None:
    server, hooks = await serve(shutdown_timeout=5)
    session = await IntegdSession.connect(sock_path(tmp_path))
    try:
        slow = asyncio.create_task(session.call("slow"))
        await hooks.slow_started.wait()
        stopping = asyncio.create_task(server.stop())
        with pytest.raises(RpcCallError) as info:
            await session.call("echo", {"text": "late"})
        assert info.value.code == -32099
        assert await slow == "finished"
        await stopping
    finally:
        await session.close()
