"""integctl and OAuth (listed in integd.ctl.FEATURES)::

    integctl apps connect SERVICE --oauth [--flow loopback|paste|device] [--paste] [--name N] [--tenant T]
        prints the authorization URL (or the user code and where to enter it) and waits for the flow's end,
        following its oauth.flow events over the WebSocket; --paste (= --flow paste) reads the final redirect
        URL (or the bare code) from standard input instead
    integctl oauth status FLOW_ID | cancel FLOW_ID | complete FLOW_ID [REDIRECT_URL_OR_CODE]
    integctl oauth clients [list] | clients set SERVICE --client-id ID [--client-secret-file F|-]
        [--auth-base-url URL] [--tenant T]

Instructions go to standard error, results to standard output (``--json`` for scripts), so that a script can
read the URL from stderr and still parse the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from integd.client import IntegdSession

Render = Callable[[Any], str]
TERMINAL = ("completed", "failed", "expired", "cancelled")


def add_connect_args(c: argparse.ArgumentParser) -> None:
    """The OAuth flags of ``integctl apps connect`` (ctl.py calls this on its connect parser)."""
    c.add_argument("--oauth", action="store_true", help="connect by OAuth instead of an API key")
    c.add_argument("--flow", choices=("loopback", "paste", "device"), default="loopback")
    c.add_argument("--paste", action="store_true", help="paste the redirect URL (or code) on standard input")
    c.add_argument("--tenant", help="Microsoft tenant (default: common)")
    c.add_argument("--scope", action="append", dest="scopes", help="a scope (repeat); default: the provider's")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("oauth", help="OAuth flows and client registrations")
    cmds = p.add_subparsers(dest="oauth_cmd", required=True)
    for name in ("status", "cancel"):
        cmds.add_parser(name).add_argument("flow_id")
    cp = cmds.add_parser("complete", help="finish a paste flow with the redirect URL or code")
    cp.add_argument("flow_id")
    cp.add_argument("pasted", nargs="?", help="the redirect URL or code (default: read standard input)")
    cl = cmds.add_parser("clients", help="OAuth client registrations")
    ccmds = cl.add_subparsers(dest="clients_cmd")
    ccmds.add_parser("list")
    cs = ccmds.add_parser("set", help="register the client for a service (admins)")
    cs.add_argument("service"); cs.add_argument("--client-id", required=True)
    cs.add_argument("--client-secret-file", help="file holding the secret, or - for standard input")
    cs.add_argument("--auth-base-url"); cs.add_argument("--tenant")


def _pasted(text: str) -> dict[str, str]:
    text = text.strip()
    if not text:
        raise SystemExit("integctl: nothing was pasted")
    return {"redirect_url": text} if ("://" in text or "code=" in text) else {"code": text}


def render_flow(f: dict[str, Any]) -> str:
    line = f"{f['flow_id']}  {f['service']}  {f['flow']}  {f['state']}"
    if f.get("app_id"):
        line += f"  app {f['app_id']}"
    if f.get("error"):
        line += f"\n  {f['error']}"
    return line


def render_clients(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no OAuth clients registered"
    return "\n".join(f"{r['service']:<14} {r['client_id']:<30} secret {r['secret_hint'] or '-':<8} ({r['source']})"
                     + (f"  auth base {r['auth_base_url']}" if r.get("auth_base_url") else "") for r in rows)


def plan(a: argparse.Namespace) -> tuple[str, dict[str, Any], Render] | None:
    if a.cmd != "oauth":
        return None
    who = {"as_user": a.as_user} if getattr(a, "as_user", None) else {}
    if a.oauth_cmd in ("status", "cancel"):
        return f"oauth.{a.oauth_cmd}", {"flow_id": a.flow_id, **who}, render_flow
    if a.oauth_cmd == "complete":
        text = a.pasted if a.pasted is not None else sys.stdin.readline()
        return "oauth.complete", {"flow_id": a.flow_id, **_pasted(text), **who}, render_flow
    if getattr(a, "clients_cmd", None) == "set":
        params: dict[str, Any] = {"service": a.service, "client_id": a.client_id}
        if a.client_secret_file:
            raw = sys.stdin.read() if a.client_secret_file == "-" else open(a.client_secret_file).read()  # noqa: SIM115
            params["client_secret"] = raw.strip()
        params.update({k: v for k, v in (("auth_base_url", a.auth_base_url), ("tenant", a.tenant)) if v})
        return "oauth.clients.set", params, lambda r: render_clients([r])
    return "oauth.clients.list", {}, render_clients


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def connect(a: argparse.Namespace) -> int:
    """``integctl apps connect SERVICE --oauth``: begin, show the URL or code, wait (or read the paste)."""
    kind = "paste" if a.paste else a.flow
    params = {k: v for k, v in {"service": a.service, "flow": kind, "name": a.name, "tenant": a.tenant,
                                "scopes": a.scopes, "base_url": a.base_url, "as_user": a.as_user}.items()
              if v is not None}
    async with await IntegdSession.connect(a.socket) as session:
        await session.call("events.subscribe", {"types": ["oauth.flow"]})
        flow = await session.call("oauth.begin", params)
        if kind == "device":
            _say(f"Open {flow['verification_uri']} and enter the code {flow['user_code']}")
        else:
            _say(f"Open this URL in a browser to authorize {a.service}:\n{flow['authorization_url']}")
        if kind == "paste":
            _say("Then paste the address the browser ends on (or the code) here and press Enter:")
            text = await asyncio.to_thread(sys.stdin.readline)
            end = await session.call("oauth.complete", {"flow_id": flow["flow_id"], **_pasted(text)})
        else:
            _say("Waiting for the authorization to complete...")
            end = await _wait(session, flow["flow_id"])
        if end["state"] != "completed":
            _say(f"integctl: the OAuth flow {end['state']}: {end.get('error') or ''}")
            return 1
        app = await session.call("apps.get", {"app_id": end["app_id"] if "app_id" in end else end["app"]})
    if a.json:
        print(json.dumps(app, indent=2, sort_keys=True))
    else:
        from integd.ctl import render_app
        print(render_app(app))
    return 0


async def _wait(session: IntegdSession, flow_id: str) -> dict[str, Any]:
    async for method, params in session.notifications():
        payload = params.get("event", {}).get("payload", {}) if method == "event" else {}
        if payload.get("flow_id") == flow_id and payload.get("state") in TERMINAL:
            return payload
    raise SystemExit("integctl: the daemon closed the connection before the flow ended")
