"""integd.client against a real RpcServer (and a misbehaving fake daemon) on Unix sockets."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from integd.client import (
    DaemonTimeout,
    DaemonUnavailable,
    IntegdClient,
    IntegdSession,
    ProtocolError,
    RpcCallError,
    default_socket_path,
)
from integd.identity import PrincipalResolver
from integd.rpc.dispatch import Dispatcher
from integd.rpc.errors import RpcError
from integd.rpc.registry import CallContext, MethodRegistry
from integd.rpc.server import RpcServer


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int
    b: int


@pytest.fixture
def stuck_started() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
async def server(tmp_path: Path, stuck_started: asyncio.Event) -> AsyncIterator[tuple[RpcServer, str]]:
    reg = MethodRegistry()
    never = asyncio.Event()

    @reg.method("add", AddParams, int, summary="a + b")
    async def add(ctx: CallContext, p: AddParams) -> int:
        return p.a + p.b

    @reg.method("refuse", NoParams, None, summary="always a domain error")
    async def refuse(ctx: CallContext, p: NoParams) -> None:
        raise RpcError(-32030, "Not allowed", {"why": "test"})

    @reg.method("stuck", NoParams, None, summary="never answers")
    async def stuck(ctx: CallContext, p: NoParams) -> None:
        stuck_started.set()
        await never.wait()

    path = str(tmp_path / "integd.sock")
    srv = RpcServer(Dispatcher(reg), PrincipalResolver(), shutdown_timeout=0.2)
    await srv.start(path=path)
    yield srv, path
    await srv.stop()


def test_default_socket_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEGD_SOCKET", "/srv/integd.sock")
    assert default_socket_path() == "/srv/integd.sock"
    monkeypatch.delenv("INTEGD_SOCKET")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    expected = "/run/integd/integd.sock" if os.getuid() == 0 else "/run/user/1000/integd/integd.sock"
    assert default_socket_path() == expected
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_socket_path() == "/run/integd/integd.sock"


async def test_call_result_and_error(server: tuple[RpcServer, str]) -> None:
    _, path = server
    async with IntegdClient(path) as client:
        assert await client.call("add", {"a": 2, "b": 3}) == 5
        assert await client.call("add", [4, 5]) == 9
        with pytest.raises(RpcCallError) as info:
            await client.call("refuse")
        assert (info.value.code, info.value.message, info.value.data) == (-32030, "Not allowed", {"why": "test"})
        assert str(info.value) == "Not allowed (code -32030)"
        await client.notify("add", {"a": 1, "b": 1})  # no answer expected, no error raised


async def test_batch_keeps_order_and_empty_batch_sends_nothing(server: tuple[RpcServer, str]) -> None:
    _, path = server
    async with IntegdClient(path) as client:
        assert await client.batch([]) == []
        out = await client.batch([("add", {"a": 1, "b": 1}), ("refuse", None), ("add", {"a": 2, "b": 2})])
        assert out[0] == 2 and out[2] == 4 and isinstance(out[1], RpcCallError)


async def test_missing_socket_is_daemon_unavailable_naming_the_path(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.sock")
    async with IntegdClient(path) as client:
        with pytest.raises(DaemonUnavailable, match="absent.sock"):
            await client.call("add", {"a": 1, "b": 2})
    with pytest.raises(DaemonUnavailable, match="absent.sock"):
        await IntegdSession.connect(path)


async def test_refused_socket_is_daemon_unavailable(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    async with IntegdClient(path) as client:
        with pytest.raises(DaemonUnavailable, match="stale.sock"):
            await client.call("add", {"a": 1, "b": 2})


async def test_http_timeout_is_daemon_timeout(server: tuple[RpcServer, str]) -> None:
    _, path = server
    async with IntegdClient(path, timeout=0.2) as client:
        with pytest.raises(DaemonTimeout) as info:
            await client.call("stuck")
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, DaemonUnavailable)


async def test_session_call_error_and_timeout(server: tuple[RpcServer, str]) -> None:
    _, path = server
    async with await IntegdSession.connect(path, timeout=0.2) as session:
        assert await session.call("add", {"a": 20, "b": 22}) == 42
        with pytest.raises(RpcCallError) as info:
            await session.call("nope")
        assert info.value.code == -32601
        with pytest.raises(DaemonTimeout):
            await session.call("stuck")
        assert await session.call("add", [1, 1]) == 2  # the session survives a timed-out call


async def test_server_going_away_fails_pending_calls_and_ends_notifications(
        server: tuple[RpcServer, str], stuck_started: asyncio.Event) -> None:
    srv, path = server
    session = await IntegdSession.connect(path)
    try:
        pending = asyncio.create_task(session.call("stuck"))
        await stuck_started.wait()
        await srv.stop()  # shutdown_timeout 0.2: the stuck call is cancelled, then the socket closes
        with pytest.raises(DaemonUnavailable, match="closed"):
            await pending
        received: list[Any] = [n async for n in session.notifications()]
        assert received == [] and session.closed and session.close_code == 1001
        with pytest.raises(DaemonUnavailable):
            await session.call("add", {"a": 1, "b": 1})
    finally:
        await session.close()


async def test_a_non_json_rpc_answer_is_a_protocol_error(tmp_path: Path) -> None:
    async def not_integd(request: web.Request) -> web.Response:
        return web.Response(status=500, text="<html>oops</html>")

    app = web.Application()
    app.router.add_post("/rpc", not_integd)
    runner = web.AppRunner(app)
    await runner.setup()
    path = str(tmp_path / "fake.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    await web.SockSite(runner, listener).start()
    try:
        async with IntegdClient(path) as client:
            with pytest.raises(ProtocolError, match="HTTP 500"):
                await client.call("add", {"a": 1, "b": 2})
    finally:
        await runner.cleanup()
