"""connectors.http.HttpTransport against small real servers on 127.0.0.1: errors, limits, redirects, cookies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from connectors.http import HttpTransport
from domain.errors import IntegrationError, IntegrationFailure

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp app on an ephemeral loopback port that records what it received."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.seen: list[web.Request] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    def route(self, method: str, path: str, handler: Handler) -> None:
        async def recording(request: web.Request) -> web.StreamResponse:
            self.seen.append(request)
            return await handler(request)
        self.app.router.add_route(method, path, recording)

    async def start(self) -> str:
        self.runner = web.AppRunner(self.app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[], Server]]:
    made: list[Server] = []

    def make() -> Server:
        made.append(Server())
        return made[-1]

    yield make
    for s in made:
        if s.runner is not None:
            await s.runner.cleanup()


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    t = HttpTransport(max_body=1000)
    yield t
    await t.close()


def text(body: str, status: int = 200, **headers: str) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(text=body, status=status, headers=headers)
    return handler


async def failure_of(coro) -> IntegrationFailure:
    with pytest.raises(IntegrationFailure) as info:
        await coro
    return info.value


async def test_plain_response_with_lower_case_headers(servers, transport):
    s = servers()
    s.route("GET", "/x", text("hello", **{"X-Thing": "1"}))
    url = await s.start()
    raw = await transport.send("GET", url + "/x", params=[("a", "1")], headers={"X-Mine": "y"}, timeout=5)
    assert (raw.status, raw.body, raw.headers["x-thing"]) == (200, b"hello", "1")
    assert s.seen[0].query["a"] == "1" and s.seen[0].headers["X-Mine"] == "y"
    assert s.seen[0].headers["User-Agent"] == "integd/0.1" and raw.latency >= 0


async def test_timeout_is_a_network_error_naming_host_and_path_only(servers, transport):
    s = servers()

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response(text="late")
    s.route("GET", "/slow", slow)
    url = await s.start()
    failure = await failure_of(transport.send("GET", url + "/slow", params=[("token", "hunter2")],
                                              headers={"Authorization": "Bearer hunter3"}, timeout=0.1))
    assert failure.category is IntegrationError.NETWORK_ERROR
    assert str(failure) == f"GET {url.removeprefix('http://')}/slow: timed out after 0.1s"
    assert "hunter" not in str(failure)


async def test_refused_connection_is_a_network_error(transport):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]                  # bound, never listening: connections are refused
        failure = await failure_of(transport.send("GET", f"http://127.0.0.1:{port}/x", timeout=5))
    assert failure.category is IntegrationError.NETWORK_ERROR and "connection refused" in str(failure)


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_bodies_are_refused(servers, transport, chunked):
    s = servers()

    async def big(request: web.Request) -> web.StreamResponse:
        if not chunked:
            return web.Response(body=b"x" * 2000)
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(20):
            await resp.write(b"y" * 100)
        await resp.write_eof()
        return resp
    s.route("GET", "/big", big)
    url = await s.start()
    failure = await failure_of(transport.send("GET", url + "/big", timeout=5))
    assert failure.category is IntegrationError.SERVICE_UNAVAILABLE
    assert "response too large (over 1000 bytes)" in str(failure)


async def test_truncated_body_is_service_unavailable(transport):
    async def lying(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: text/plain\r\n\r\nshort")
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(lying, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        failure = await failure_of(transport.send("GET", f"http://127.0.0.1:{port}/t", timeout=5))
    finally:
        server.close()
        await server.wait_closed()
    assert failure.category is IntegrationError.SERVICE_UNAVAILABLE and "truncated" in str(failure)


async def test_same_origin_redirects_are_followed(servers, transport):
    s = servers()
    s.route("GET", "/old", text("", status=301, Location="/new?page=2"))
    s.route("GET", "/new", text("moved here"))
    s.route("POST", "/form", text("", status=303, Location="/new"))
    url = await s.start()
    raw = await transport.send("GET", url + "/old", params=[("page", "1")], timeout=5)
    assert raw.status == 200 and raw.body == b"moved here" and s.seen[-1].query["page"] == "2"
    raw = await transport.send("POST", url + "/form", json={"a": 1}, timeout=5)
    assert raw.status == 200 and s.seen[-1].method == "GET"


async def test_redirects_elsewhere_are_not_followed_with_the_credential(servers, transport):
    elsewhere, home = servers(), servers()
    elsewhere.route("GET", "/steal", text("gotcha"))
    other = await elsewhere.start()
    home.route("GET", "/go", text("", status=302, Location=other + "/steal"))
    url = await home.start()
    raw = await transport.send("GET", url + "/go", headers={"Authorization": "Bearer secret"}, timeout=5)
    assert raw.status == 302 and raw.headers["location"] == other + "/steal"
    assert elsewhere.seen == []


async def test_cookies_are_never_kept_between_requests(servers, transport):
    s = servers()

    async def set_cookie(_: web.Request) -> web.Response:
        resp = web.Response(text="hi")
        resp.set_cookie("session", "user-a")
        return resp
    s.route("GET", "/login", set_cookie)
    s.route("GET", "/again", text("ok"))
    url = await s.start()
    await transport.send("GET", url + "/login", timeout=5)
    await transport.send("GET", url + "/again", timeout=5)
    assert "Cookie" not in s.seen[-1].headers


async def test_bad_urls_and_timeouts_are_configuration_errors(transport):
    for url in ("ftp://127.0.0.1/x", "/relative", "http:///nohost"):
        failure = await failure_of(transport.send("GET", url, timeout=5))
        assert failure.category is IntegrationError.INVALID_CONFIGURATION
    failure = await failure_of(transport.send("GET", "http://127.0.0.1:1/x", timeout=0))
    assert failure.category is IntegrationError.INVALID_CONFIGURATION


async def test_the_session_is_recreated_after_close(servers):
    s = servers()
    s.route("GET", "/x", text("ok"))
    url = await s.start()
    t = HttpTransport()
    assert (await t.send("GET", url + "/x", timeout=5)).status == 200
    await t.close()
    assert (await t.send("GET", url + "/x", timeout=5)).status == 200
    await t.close()
    await t.close()
