"""The loopback redirect listener of one OAuth flow (RFC 8252 §7.3).

``await LoopbackListener.start(redirect_uri, on_redirect)`` binds the redirect URI's host (127.0.0.1 or ::1 only)
on an ephemeral port and serves its path; the browser's redirect lands there and ``on_redirect(full_url)`` runs.
The person sees a one-line page: connected, or what went wrong (the error's safe message). ``close()`` stops it;
the flow closes it as soon as it ends, so it lives only for that flow.

Errors: ``InvalidConfiguration`` when the redirect URI is not plain http on a loopback IP (use the paste flow);
OSError from bind. Trust model: loopback only, one GET path, nothing else answered.
"""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web

from domain import DomainException, IntegrationFailure, InvalidConfiguration

LOOPBACK = ("127.0.0.1", "::1")


def with_port(uri: str, port: int) -> str:
    """``http://127.0.0.1/callback`` with ``port`` filled in: ``http://127.0.0.1:49152/callback``."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return urllib.parse.urlunsplit((parts.scheme, f"{shown}:{port}", parts.path or "/", parts.query, ""))


class LoopbackListener:
    def __init__(self, runner: web.AppRunner, redirect_uri: str) -> None:
        self.runner, self.redirect_uri = runner, redirect_uri

    @classmethod
    async def start(cls, registered: str, on_redirect: Callable[[str], Awaitable[None]]) -> LoopbackListener:
        parts = urllib.parse.urlsplit(registered)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK:
            raise InvalidConfiguration(f"the loopback flow needs a redirect URI on http://127.0.0.1 (configured: "
                                       f"{parts.scheme}://{parts.hostname}); use the paste flow",
                                       field="redirect_uri")

        async def callback(request: web.Request) -> web.Response:
            try:
                await on_redirect(str(request.url))
            except (DomainException, IntegrationFailure) as exc:
                return web.Response(status=400, text=f"integd: {exc}\n")
            return web.Response(text="integd: connected. You can close this window.\n")

        app = web.Application()
        app.router.add_get(parts.path or "/", callback)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if parts.hostname == "::1" else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((parts.hostname, 0))        # an ephemeral port, on loopback only
            sock.listen(8)
            sock.setblocking(False)
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        return cls(runner, with_port(registered, sock.getsockname()[1]))

    async def close(self) -> None:
        await self.runner.cleanup()
