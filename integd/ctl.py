"""``integctl``: every RPC method as a subcommand, for people and scripts.

Human-readable output by default, ``--json`` for scripts; ``integctl call METHOD [PARAMS_JSON]`` for anything.
Exit status: 0 on success; 1 with the JSON-RPC error's message and code on stderr; 2 for usage errors; 3 when the
daemon cannot be reached. The socket comes from ``--socket``, ``$INTEGD_SOCKET`` or the default path.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from integd import ctl_oauth
from integd.client import DaemonUnavailable, IntegdClient, IntegdSession, RpcCallError, default_socket_path

Render = Callable[[Any], str]


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    d = max(0.0, time.time() - ts)
    return f"{d:.0f}s ago" if d < 120 else f"{d / 60:.0f}m ago" if d < 7200 else f"{d / 3600:.0f}h ago"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*headers)] + [fmt.format(*map(str, r)) for r in rows])


def render_apps(apps: list[dict[str, Any]]) -> str:
    if not apps:
        return "no apps"
    rows = []
    for a in apps:
        w = a.get("tightest_window")
        use = f"{w['name']} {100 * w['used'] / w['limit']:.0f}%" if w and w.get("limit") else "-"
        lat = f"{a['last_latency'] * 1000:.0f}ms" if a.get("last_latency") is not None else "-"
        rows.append([a["id"], a["name"][:28], a["service"], a["owner"], a["status"], _ago(a["last_check_at"]),
                     lat, use])
    return _table(rows, ["ID", "NAME", "SERVICE", "OWNER", "STATUS", "CHECKED", "LATENCY", "LIMIT"])


def render_app(a: dict[str, Any]) -> str:
    lines = [f"{a['name']}  ({a['id']})",
             f"  service:        {a['service']} ({a['category']})  {a['base_url']}",
             f"  owner:          {a['owner']}" + (f"  shared with: {', '.join(a['shared_with'])}"
                                                  if a["shared_with"] else ""),
             f"  status:         {a['status']}  {a['status_reason']}",
             f"  credential:     {json.dumps(a['credential']) if a.get('credential') else '-'}",
             f"  rate limit:     {json.dumps(a['rate_limit'])}",
             f"  timeout:        {a['timeout']:g}s   check every {a['check_interval']:g}s",
             f"  last check:     {_ago(a['last_check_at'])}"]
    if a.get("health"):
        strip = "".join("." if h["ok"] else "x" for h in a["health"])
        lines.append(f"  health:         {strip}")
    if a.get("last_error"):
        lines.append(f"  last error:     {a['last_error']}")
    return "\n".join(lines)


def render_event(e: dict[str, Any]) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(e["occurred_at"]))
    detail = " ".join(f"{k}={v}" for k, v in e["payload"].items() if v not in (None, "", {}))
    return f"{e['seq']:>6} {when} {e['type']:<22} {e['app_id']} {detail}"


def render_usage(u: dict[str, Any]) -> str:
    rows = [[w["name"], w["limit"], w["used"], w["remaining"], _ago(None) if not w["resets_at"] else
             time.strftime("%H:%M:%S", time.localtime(w["resets_at"]))] for w in u["windows"]]
    out = _table(rows, ["WINDOW", "LIMIT", "USED", "REMAINING", "RESETS"]) if rows else "no bounded windows"
    if u.get("provider"):
        out += "\nprovider: " + json.dumps(u["provider"])
    if u.get("plan"):
        out += "\nplan: " + json.dumps(u["plan"])
    return out


def render_services(services: list[dict[str, Any]]) -> str:
    rows = [[s["name"], s["category"], ",".join(s["auth_modes"]), "yes" if s["implemented"] else "no",
             s["default_base_url"]] for s in services]
    return _table(rows, ["SERVICE", "CATEGORY", "AUTH", "IMPLEMENTED", "BASE URL"])


def _json(v: Any) -> str:
    return json.dumps(v, indent=2, sort_keys=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="integctl", description="Talk to the integd daemon.")
    p.add_argument("--socket", help=f"daemon socket (default: $INTEGD_SOCKET or {default_socket_path()})")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--as-user", help="service principals: act for this user")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status", help="daemon status")
    s = sub.add_parser("services", help="the service catalogue")
    s.add_argument("--category")
    apps = sub.add_parser("apps", help="connected apps").add_subparsers(dest="apps_cmd", required=True)
    c = apps.add_parser("connect", help="connect a service with an API key (or --oauth)")
    c.add_argument("service")
    c.add_argument("--api-key-file", help="file holding the key, or - for standard input (required without --oauth)")
    ctl_oauth.add_connect_args(c)
    c.add_argument("--name"); c.add_argument("--base-url")
    c.add_argument("--timeout", type=float); c.add_argument("--check-interval", type=float)
    _limit_args(c)
    ls = apps.add_parser("list", help="list apps")
    ls.add_argument("--service"); ls.add_argument("--status")
    ls.add_argument("--all-users", action="store_true"); ls.add_argument("--include-disconnected", action="store_true")
    for name in ("get", "check", "usage"):
        apps.add_parser(name).add_argument("app_id")
    cf = apps.add_parser("configure", help="change limits, timeout, interval or name")
    cf.add_argument("app_id"); cf.add_argument("--name")
    cf.add_argument("--timeout", type=float); cf.add_argument("--check-interval", type=float)
    _limit_args(cf)
    rq = apps.add_parser("request", help="call the provider through the app")
    rq.add_argument("app_id"); rq.add_argument("method", type=str.upper); rq.add_argument("path")
    rq.add_argument("--param", action="append", default=[], metavar="K=V")
    rq.add_argument("--body", help="JSON request body"); rq.add_argument("--wait", action="store_true")
    for name in ("share", "unshare"):
        sp = apps.add_parser(name); sp.add_argument("app_id"); sp.add_argument("user")
    dc = apps.add_parser("disconnect"); dc.add_argument("app_id"); dc.add_argument("--reason")
    ev = sub.add_parser("events", help="list or follow events")
    ev.add_argument("--after", type=int, default=0); ev.add_argument("--limit", type=int, default=100)
    ev.add_argument("--type", action="append", dest="types"); ev.add_argument("--app")
    ev.add_argument("--follow", "-f", action="store_true")
    keys = sub.add_parser("keys", help="vault keys").add_subparsers(dest="keys_cmd", required=True)
    keys.add_parser("rotate", help="re-encrypt every credential under a new data key")
    call = sub.add_parser("call", help="call any method: integctl call METHOD [PARAMS_JSON]")
    call.add_argument("method"); call.add_argument("params", nargs="?")
    for feature in _features():
        feature.add_parsers(sub)
    return p


# Feature modules' subcommands. Each module defines add_parsers(subparsers) and
# plan(args) -> (method, params, render) | None (None: not one of its commands); see integd/ctl_*.py.
FEATURES: tuple[str, ...] = ("integd.ctl_sinks", "integd.ctl_sync", "integd.ctl_oauth")


def _features() -> list[Any]:
    return [importlib.import_module(name) for name in FEATURES]


def _limit_args(p: argparse.ArgumentParser) -> None:
    for w in ("per-minute", "per-hour", "per-day", "burst"):
        p.add_argument(f"--{w}", type=int)


def _limits(a: argparse.Namespace) -> dict[str, int] | None:
    got = {k: getattr(a, k) for k in ("per_minute", "per_hour", "per_day", "burst") if getattr(a, k) is not None}
    return got or None


def _read_key(path: str) -> str:
    data = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    return data.strip()


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def plan(a: argparse.Namespace) -> tuple[str, dict[str, Any] | list[Any] | None, Render]:
    """(method, params, human renderer) for parsed arguments."""
    for feature in _features():
        planned = feature.plan(a)
        if planned is not None:
            return planned
    who = _compact({"as_user": a.as_user})
    if a.cmd == "status":
        return "daemon.status", {}, lambda r: "\n".join(f"{k}: {v}" for k, v in r.items())
    if a.cmd == "services":
        return "services.list", _compact({"category": a.category}), render_services
    if a.cmd == "keys":
        return "keys.rotate", {}, lambda r: f"rotated: new key {r['new_key_id']}, {r['reencrypted']} credentials"
    if a.cmd == "call":
        try:
            params = json.loads(a.params) if a.params else None
        except json.JSONDecodeError as e:
            raise SystemExit(f"integctl: PARAMS_JSON is not valid JSON: {e}") from None
        return a.method, params, _json
    c = a.apps_cmd
    ref = {"app_id": getattr(a, "app_id", None), **who}
    if c == "connect":
        if a.api_key_file is None:
            raise SystemExit("integctl: apps connect needs --api-key-file (or --oauth)")
        return "apps.connect", _compact({"service": a.service, "api_key": _read_key(a.api_key_file),
                                         "name": a.name, "base_url": a.base_url, "timeout": a.timeout,
                                         "check_interval": a.check_interval, "rate_limit": _limits(a),
                                         **who}), render_app
    if c == "list":
        return "apps.list", _compact({"service": a.service, "status": a.status, "all_users": a.all_users or None,
                                      "include_disconnected": a.include_disconnected or None, **who}), render_apps
    if c == "get":
        return "apps.get", ref, render_app
    if c == "check":
        return "apps.check", ref, lambda r: (f"{r['app']['name']}: {r['outcome']} in {r['latency'] * 1000:.0f}ms"
                                             + (f" - {r['message']}" if r["message"] else ""))
    if c == "usage":
        return "apps.usage", ref, render_usage
    if c == "configure":
        return "apps.configure", _compact({**ref, "name": a.name, "timeout": a.timeout,
                                           "check_interval": a.check_interval, "rate_limit": _limits(a)}), render_app
    if c == "request":
        params = {}
        for kv in a.param:
            k, sep, v = kv.partition("=")
            if not sep:
                raise SystemExit(f"integctl: --param takes K=V, got {kv!r}")
            params[k] = v
        body = None
        if a.body is not None:
            try:
                body = json.loads(a.body)
            except json.JSONDecodeError as e:
                raise SystemExit(f"integctl: --body is not valid JSON: {e}") from None
        return "apps.request", _compact({**ref, "method": a.method, "path": a.path, "params": params or None,
                                         "json": body, "wait": a.wait or None}), \
            lambda r: f"HTTP {r['status']} ({r['latency'] * 1000:.0f}ms, {r['attempts']} attempt(s))\n" + \
            (_json(r["body"]) if not isinstance(r["body"], str) else r["body"])
    if c in ("share", "unshare"):
        return f"apps.{c}", {**ref, "user": a.user}, render_app
    if c == "disconnect":
        return "apps.disconnect", _compact({**ref, "reason": a.reason}), lambda r: f"{r['app_id']}: {r['status']}"
    raise SystemExit(f"integctl: unknown command {c}")


async def run(a: argparse.Namespace) -> int:
    if a.cmd == "events":
        return await _events(a)
    if a.cmd == "apps" and a.apps_cmd == "connect" and a.oauth:
        return await ctl_oauth.connect(a)
    method, params, render = plan(a)
    async with IntegdClient(a.socket) as client:
        result = await client.call(method, params)
    print(_json(result) if a.json else render(result))
    return 0


async def _events(a: argparse.Namespace) -> int:
    filt = _compact({"types": a.types, "app_id": a.app, "as_user": a.as_user})
    if not a.follow:
        async with IntegdClient(a.socket) as client:
            page = await client.call("events.list", {"after": a.after, "limit": a.limit, **filt})
        for e in page["events"]:
            print(json.dumps(e) if a.json else render_event(e))
        return 0
    async with await IntegdSession.connect(a.socket) as session:
        await session.call("events.subscribe", {**filt, "after": a.after} if a.after else filt)
        async for method, params in session.notifications():
            if method == "event":
                e = params["event"]
                print(json.dumps(e) if a.json else render_event(e), flush=True)
    print("integctl: the daemon closed the connection", file=sys.stderr)
    return 3


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(a))
    except RpcCallError as e:
        if a.json:
            print(json.dumps({"error": {"code": e.code, "message": e.message, "data": e.data}}), file=sys.stderr)
        else:
            extra = ""
            if isinstance(e.data, dict):
                extra = "".join(f"\n  {k}: {v}" for k, v in e.data.items() if k != "kind" and v is not None)
            print(f"integctl: {e.message} (code {e.code}){extra}", file=sys.stderr)
        return 1
    except DaemonUnavailable as e:
        print(f"integctl: {e}", file=sys.stderr)
        return 3
    except OSError as e:
        print(f"integctl: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, and keep the interpreter's flush at exit quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
