"""A fake daemon session for the dashboard: the same call/notifications interface as IntegdSession.

It answers from memory with fixed data (ids, times, versions), so that snapshots are stable and the benchmark
measures the dashboard alone. Pilot tests use the real daemon instead.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from integd.client import DaemonUnavailable, RpcCallError

NOW = 1_700_000_000.0


def wire(value: Any) -> Any:
    """A fresh copy as the real client would hand it over: decoded from JSON."""
    return json.loads(json.dumps(value))
_END = object()


def fixed_job(app: dict[str, Any], n: int, *, state: str = "idle", pages: int = 5,
              resource: str = "octo/repo") -> dict[str, Any]:
    """A SyncJobInfo-shaped dict for ``app`` with everything derived from ``n``."""
    counts = {"created": 40 * n, "updated": 3, "deleted": 1, "pushed": 0, "conflicts": 0, "unchanged": 0,
              "pages": pages}
    return {
        "id": f"job_{n:08x}", "app_id": app["id"], "user": app["owner"], "service": app["service"],
        "stream": "issues", "resource": resource, "key": f"issues:{resource}", "direction": "pull",
        "frequency": {"kind": "hourly"}, "conflict_resolution": "latest_wins", "batch_size": 100, "state": state,
        "cursor": None, "created_at": NOW - 86400, "updated_at": NOW - 600, "last_run_at": NOW - 600,
        "last_success_at": NOW - 600, "last_error": None if state != "failed" else "HTTP 503 from GitHub",
        "last_counts": counts, "totals": {**counts, "created": 400 * n}, "runs": 10 + n,
        "next_run_at": NOW + 3000, "progress": None,
    }


def fixed_app(n: int, *, service: str = "github", status: str = "connected", name: str | None = None,
              owner: str = "alice", used: int = 0) -> dict[str, Any]:
    """An AppDetail-shaped dict with everything derived from ``n``."""
    category = {"github": "dev_tools", "slack": "messaging", "sendgrid": "email"}[service]
    limit = {"github": 5000, "slack": 50, "sendgrid": 600}[service]
    return {
        "id": f"int_{n:032x}", "name": name or f"{service}-{n}", "service": service, "category": category,
        "owner": owner, "status": status, "status_reason": "" if status == "connected" else "HTTP 401 Bad credentials",
        "shared_with": [], "created_at": NOW - 86400, "updated_at": NOW - 60, "connected_at": NOW - 86400,
        "last_check_at": NOW - 12 - n % 50, "last_latency": 0.040 + (n % 7) / 100, "next_check_at": NOW + 48,
        "consecutive_failures": 0 if status == "connected" else 2,
        "rate_limit": {"per_minute": None, "per_hour": limit, "per_day": None, "burst": None},
        "tightest_window": {"name": "hour", "limit": limit, "used": used, "remaining": limit - used,
                            "resets_at": NOW + 1800},
        "base_url": f"https://api.{service}.example", "timeout": 10.0, "check_interval": 60.0,
        "credential": {"mode": "api_key", "hint": "…0001"}, "last_error": None,
        "health": [{"checked_at": NOW - 60 * i, "ok": i != 3, "outcome": "ok" if i != 3 else "service_down",
                    "latency": 0.03 + (i % 5) / 50, "message": "", "status": 200} for i in range(12, 0, -1)],
    }


SERVICES = [
    {"name": "github", "display_name": "GitHub", "category": "dev_tools", "auth_modes": ["api_key", "oauth2"],
     "implemented": True, "docs_url": "https://docs.github.com/rest"},
    {"name": "slack", "display_name": "Slack", "category": "messaging", "auth_modes": ["api_key", "oauth2"],
     "implemented": True, "docs_url": "https://api.slack.com"},
    {"name": "gmail", "display_name": "Gmail", "category": "email", "auth_modes": ["oauth2"],
     "implemented": False, "docs_url": "https://developers.google.com/gmail/api"},
]


class FakeDaemon:
    """The daemon's state in memory; ``session_factory`` gives the dashboard sessions onto it.

    Example::

        fake = FakeDaemon([fixed_app(1)])
        app = IntegApp(socket_path="/fake.sock", session_factory=fake.session_factory)
        fake.emit("app.status_changed", app_id, {"new_status": "error"})
    """

    def __init__(self, apps: list[dict[str, Any]], events: list[dict[str, Any]] | None = None) -> None:
        self.apps = {a["id"]: a for a in apps}
        self.events = list(events or [])
        self.up = True
        self.sessions: list[FakeSession] = []
        self.calls: list[str] = []
        self.jobs: list[dict[str, Any]] = []
        self.before_answer: Callable[[str], None] | None = None  # a hook: act while a call is under way

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    async def session_factory(self, socket_path: str) -> FakeSession:
        if not self.up:
            raise DaemonUnavailable(f"integd is not reachable at {socket_path}: [Errno 111] Connection refused")
        session = FakeSession(self)
        self.sessions.append(session)
        return session

    def emit(self, kind: str, app_id: str, payload: dict[str, Any], occurred_at: float = NOW) -> dict[str, Any]:
        """Commit an event and send it to every live subscription."""
        event = {"seq": self.last_seq + 1, "event_id": f"ev{self.last_seq + 1}", "type": kind, "app_id": app_id,
                 "user": "alice", "occurred_at": occurred_at, "payload": payload}
        self.events.append(event)
        if kind == "app.status_changed" and app_id in self.apps:
            self.apps[app_id]["status"] = payload["new_status"]
        for session in self.sessions:
            session.deliver(event)
        return event

    def signal(self, method: str, params: dict[str, Any]) -> None:
        """Send a live notification that is not an event (``app.checked``, ``sync.progress``) to every session."""
        for session in self.sessions:
            session.deliver_signal(method, params)

    def check(self, app_id: str, *, ok: bool = True, latency: float = 0.05, at: float = NOW) -> None:
        """A completed health check, as the daemon announces it (``app.checked``)."""
        app = self.apps[app_id]
        app.update(last_check_at=at, last_latency=latency, next_check_at=at + app["check_interval"])
        summary = {k: v for k, v in app.items() if k not in ("health", "credential", "base_url", "timeout",
                                                            "check_interval", "last_error")}
        self.signal("app.checked", {"app": copy.deepcopy(summary), "result": {
            "ok": ok, "outcome": "ok" if ok else "service_down", "latency": latency, "checked_at": at,
            "message": "" if ok else "HTTP 503"}})

    def stop(self) -> None:
        self.up = False
        for session in self.sessions:
            session.end()
        self.sessions.clear()

    def answer(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append(method)
        if self.before_answer is not None:
            self.before_answer(method)
        if method == "daemon.status":
            return {"version": "0.1.0", "uptime": 3725.0, "by_status": {}, "last_event_seq": self.last_seq}
        if method == "apps.list":
            return [dict(a) for a in self.apps.values()]  # shallow: the dashboard never mutates nested values
        if method == "services.list":
            return copy.deepcopy(SERVICES)
        if method == "events.list":
            after, before, limit = params.get("after", 0), params.get("before"), params.get("limit", 100)
            chosen = [e for e in self.events if e["seq"] > after and (before is None or e["seq"] < before)
                      and params.get("app_id") in (None, e["app_id"])]
            if params.get("order") == "desc":
                chosen.reverse()
            chosen = chosen[:limit]
            return {"events": chosen, "last_seq": max((e["seq"] for e in chosen), default=after)}
        if method == "oauth.begin":
            return {"flow_id": "flow_0001", "service": params["service"], "flow": params.get("flow", "loopback"),
                    "state": "started", "expires_at": NOW + 600, "redirect_uri": "http://127.0.0.1:8765/callback",
                    "authorization_url": "https://github.example/login/oauth/authorize?client_id=Iv1.fixed"
                                         "&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback&state=fixedstate"
                                         "&code_challenge=fixedchallenge&code_challenge_method=S256"}
        if method == "sync.list":
            return [copy.deepcopy(j) for j in self.jobs if params.get("app_id") in (None, j["app_id"])]
        if method in ("apps.get", "apps.check", "apps.usage"):
            app = self.apps.get(params.get("app_id", ""))
            if app is None:
                raise RpcCallError(-32001, "no such app")
            if method == "apps.usage":
                return {"app_id": app["id"], "windows": [app["tightest_window"]], "provider": {}, "plan": None}
            if method == "apps.check":
                return {"app": wire(app), "ok": True, "outcome": "ok", "latency": 0.04, "message": ""}
            return wire(app)
        raise RpcCallError(-32601, f"Method not found: {method}")


class FakeSession:
    def __init__(self, daemon: FakeDaemon) -> None:
        self.daemon = daemon
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.subscribed_after: int | None = None
        self.closed = False

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        if self.closed:
            raise DaemonUnavailable("session with integd closed")
        await asyncio.sleep(0)  # the answer comes back through the loop, as over a socket
        params = params or {}
        if method == "events.subscribe":
            after = params.get("after")
            self.subscribed_after = self.daemon.last_seq if after is None else after
            for event in self.daemon.events:
                if event["seq"] > self.subscribed_after:
                    self.queue.put_nowait(("event", {"subscription": "sub_1", "event": event}))
            return {"subscription": "sub_1", "last_seq": self.daemon.last_seq}
        return self.daemon.answer(method, params)

    def deliver(self, event: dict[str, Any]) -> None:
        if self.subscribed_after is not None and not self.closed:
            self.queue.put_nowait(("event", {"subscription": "sub_1", "event": event}))

    def deliver_signal(self, method: str, params: dict[str, Any]) -> None:
        if self.subscribed_after is not None and not self.closed:
            self.queue.put_nowait((method, {"subscription": "sub_1", **params}))

    def end(self) -> None:
        self.closed = True
        self.queue.put_nowait(_END)

    async def notifications(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        while True:
            item = await self.queue.get()
            if item is _END:
                return
            yield item

    async def close(self) -> None:
        if not self.closed:
            self.end()
        if self in self.daemon.sessions:
            self.daemon.sessions.remove(self)
