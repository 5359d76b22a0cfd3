"""`integd demo` (headless): emulators, a daemon and five demo apps whose statuses move."""

from __future__ import annotations

import asyncio

from integd.client import IntegdClient
from integd.demo import DEMO_APPS, run_demo


async def test_demo_connects_its_apps_and_revocation_turns_one_unauthorized(short_dir, capsys):
    stop = asyncio.Event()
    seen: dict = {}

    async def on_ready(daemon) -> None:
        async with IntegdClient(str(daemon.paths.socket)) as c:
            apps = await c.call("apps.list")
            seen["names"] = sorted(a["name"] for a in apps)
            seen["services"] = {a["service"] for a in apps}
            jobs = await c.call("sync.list")
            seen["jobs"] = sorted(j["key"].split(":")[0] + "@" + j["service"] for j in jobs)
            github = next(j for j in jobs if j["service"] == "github")
            seen["github"] = (await c.call("sync.run", {"job_id": github["id"], "wait": True}))["job"]
        stop.set()

    code = await asyncio.wait_for(run_demo(short_dir / "demo", headless=True, on_ready=on_ready, stop=stop), 60)
    assert code == 0
    assert seen["names"] == sorted(a.name for a in DEMO_APPS)
    from connectors.catalogue import SERVICES
    assert seen["services"] == set(SERVICES), "one app per service, all fifteen"
    assert seen["jobs"] == ["files@google_drive", "issues@github", "messages@gmail", "messages@slack"]
    assert seen["github"]["state"] == "idle" and seen["github"]["totals"]["created"] > 0, seen["github"]
    out = capsys.readouterr().out
    assert "integctl apps list" in out and str(short_dir / "demo" / "integd.sock") in out


async def test_demo_keeps_state_between_runs(short_dir):
    ids = []
    for _ in range(2):
        stop = asyncio.Event()

        async def on_ready(daemon) -> None:
            async with IntegdClient(str(daemon.paths.socket)) as c:
                apps = await c.call("apps.list")
                ids.append(sorted(a["id"] for a in apps))
                for name in (DEMO_APPS[0].name, "Gmail (support inbox)"):     # an API-key app, an OAuth app
                    app = next(a for a in apps if a["name"] == name)
                    assert (await c.call("apps.check", {"app_id": app["id"]}))["ok"], f"{name}: emulator is back"
            stop.set()

        assert await asyncio.wait_for(run_demo(short_dir / "demo", headless=True, on_ready=on_ready,
                                               stop=stop), 60) == 0
    assert ids[0] == ids[1] and len(ids[0]) == len(DEMO_APPS)
