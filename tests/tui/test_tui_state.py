"""The dashboard's pure parts: formatting, the view-model, and the link's resync rules (over a fake session)."""

from __future__ import annotations

import asyncio
import doctest

import pytest

from integtui import format as fmt
from integtui import state as state_mod
from integtui.link import Link
from integtui.screens import configure, connect, detail, signin
from integtui.state import DashboardState, columns_for
from integtui.widgets import event_log, status_line, sync_jobs
from tests.tui.fakes import NOW, FakeDaemon, fixed_app, fixed_job


@pytest.mark.parametrize("module", [fmt, state_mod, event_log, status_line, configure, connect, detail, signin,
                                    sync_jobs])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


def test_every_status_reads_without_colour():
    for status in fmt.STATUS_ORDER:
        symbol, word = fmt.status_plain(status).split(" ")
        assert word == status and symbol not in ("", "?")
    assert len({fmt.status_plain(s)[0] for s in fmt.STATUS_ORDER}) == len(fmt.STATUS_ORDER), "distinct symbols"


def test_narrow_columns_fit_80_cells():
    narrow = columns_for(False)
    assert sum(c.width + 2 for c in narrow) <= 78, "80 columns minus the scrollbar"
    assert {c.key for c in columns_for(True)} >= {"category", "owner"}


def test_filter_matches_visible_text_and_sort_flips():
    s = DashboardState()
    s.load([fixed_app(1, name="zeta"), fixed_app(2, service="slack", name="alpha", status="error"),
            fixed_app(3, service="sendgrid", name="mid", owner="bob")])
    assert [s.apps[i]["name"] for i in s.visible_ids(NOW)] == ["alpha", "mid", "zeta"]
    s.set_filter("BOB")
    assert [s.apps[i]["name"] for i in s.visible_ids(NOW)] == ["mid"], "owner is visible text, case-blind"
    s.set_filter("✖")
    assert [s.apps[i]["name"] for i in s.visible_ids(NOW)] == ["alpha"], "the status symbol too"
    s.set_filter("")
    s.set_sort("status")
    assert s.apps[s.visible_ids(NOW)[0]]["name"] == "alpha", "errors first"
    s.set_sort("status")
    assert s.apps[s.visible_ids(NOW)[-1]]["name"] == "alpha", "again: reversed"
    with pytest.raises(ValueError, match="unknown column 'colour'"):
        s.set_sort("colour")


def test_events_patch_rows_and_mark_what_to_redraw():
    s = DashboardState()
    a, b = fixed_app(1), fixed_app(2)
    s.load([a, b])
    s.structure_dirty = False
    assert s.apply_event({"seq": 5, "type": "app.status_changed", "app_id": a["id"],
                          "payload": {"old_status": "connected", "new_status": "rate_limited", "reason": "429"}})
    assert s.apps[a["id"]]["status"] == "rate_limited" and s.take_dirty() == {a["id"]}
    assert not s.structure_dirty, "sorted by name: the order holds"
    s.set_sort("status")
    s.structure_dirty = False
    s.apply_event({"seq": 6, "type": "app.status_changed", "app_id": b["id"],
                   "payload": {"new_status": "error"}})
    assert s.structure_dirty, "sorted by status: the order changed"
    assert s.apply_event({"seq": 7, "type": "app.disconnected", "app_id": a["id"], "payload": {}}) is False
    assert a["id"] not in s.apps and s.last_seq == 7
    assert [e["seq"] for e in s.log_lines()] == [7, 6, 5], "newest first"
    assert [e["seq"] for e in s.log_lines(frozenset({"app.status_changed"}), b["id"])] == [6]
    assert s.counts() == {"error": 1}


def test_upsert_of_a_disconnected_app_removes_it():
    s = DashboardState()
    s.load([fixed_app(1)])
    s.upsert({**fixed_app(1), "status": "disconnected"})
    assert s.apps == {}


def test_configure_changes_are_only_what_changed():
    app = fixed_app(1)
    assert configure.changes(app, {"name": app["name"], "timeout": "10", "per_hour": "5000"}) == {}
    with pytest.raises(ValueError, match=r"rate_limit.per_minute: '0'"):
        configure.changes(app, {"per_minute": "0"})
    with pytest.raises(ValueError, match="timeout: 'soon'"):
        configure.changes(app, {"timeout": "soon"})


class Recorder:
    """Collects the link's messages and lets a test await the next one of a kind."""

    def __init__(self) -> None:
        self.messages: list[object] = []
        self.changed = asyncio.Condition()

    def post(self, message: object) -> None:
        self.messages.append(message)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait(self, kind: type, count: int = 1) -> list:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(
                lambda: len([m for m in self.messages if isinstance(m, kind)]) >= count), 5)
        return [m for m in self.messages if isinstance(m, kind)]


async def test_link_reconnects_and_replays_only_what_it_missed():
    a = fixed_app(1)
    fake = FakeDaemon([a])
    fake.emit("app.connected", a["id"], {"service": "github"})
    rec = Recorder()
    link = Link("/tmp/x.sock", fake.session_factory, rec.post, first_delay=0.01, max_delay=0.04)
    task = asyncio.create_task(link.run())
    try:
        (up,) = await rec.wait(Link.Up)
        assert [e["seq"] for e in up.backlog] == [1] and up.last_seq == 1
        fake.emit("app.status_changed", a["id"], {"new_status": "error"})
        (live,) = await rec.wait(Link.Event)
        assert live.event["seq"] == 2 and not live.replayed
        fake.stop()
        (down,) = await rec.wait(Link.Down)
        assert down.banner == "daemon unavailable at /tmp/x.sock - retrying in 0.01s"
        fake.emit("app.status_changed", a["id"], {"new_status": "connected"})  # committed while we were away
        fake.up = True
        ups = await rec.wait(Link.Up, 2)
        assert ups[1].backlog is None, "no backlog: the daemon replays after our last seq"
        events = await rec.wait(Link.Event, 2)
        assert events[1].event["seq"] == 3 and events[1].replayed, "in the snapshot already: log only"
        assert [m.retry_in for m in rec.messages if isinstance(m, Link.Down)][:1] == [0.01]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_link_backoff_doubles_to_the_cap():
    fake = FakeDaemon([])
    fake.up = False
    rec = Recorder()
    link = Link("/tmp/x.sock", fake.session_factory, rec.post, first_delay=0.001, max_delay=0.004)
    task = asyncio.create_task(link.run())
    try:
        downs = await rec.wait(Link.Down, 5)
        assert [d.retry_in for d in downs[:5]] == [0.001, 0.002, 0.004, 0.004, 0.004]
        assert "Connection refused" in downs[0].reason
        with pytest.raises(Exception, match="daemon unavailable at /tmp/x.sock"):
            await link.call("apps.list")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    with pytest.raises(ValueError, match="retry delays"):
        Link("/x", fake.session_factory, rec.post, first_delay=0)


def test_status_counts_follow_every_change_without_recounting():
    s = DashboardState()
    s.load([fixed_app(n, status=st) for n, st in enumerate(("connected", "connected", "error"))])
    assert s.counts() == {"error": 1, "connected": 2}
    ids = list(s.apps)
    s.apply_event({"seq": 1, "type": "app.status_changed", "app_id": ids[0], "payload": {"new_status": "error"}})
    s.upsert({**fixed_app(7), "status": "pending"})
    s.upsert({"id": ids[2], "status": "unauthorized"})
    s.remove(ids[1])
    s.upsert({"id": ids[0], "status": "disconnected"})
    recount: dict[str, int] = {}
    for a in s.apps.values():
        recount[a["status"]] = recount.get(a["status"], 0) + 1
    assert s.counts() == recount == {"unauthorized": 1, "pending": 1}
    assert list(s.counts()) == ["unauthorized", "pending"], "the header's order"


def test_oauth_flow_events_only_reach_the_log():
    s = DashboardState()
    event = {"seq": 4, "type": "oauth.flow", "app_id": "flow_1",
             "payload": {"flow_id": "flow_1", "service": "github", "flow": "paste", "state": "started"}}
    assert s.apply_event(event) is False, "no apps.get for a flow id"
    assert fmt.event_summary(event) == "github sign-in (paste) started"


def test_sync_job_lines():
    app = fixed_app(1)
    idle, failed = fixed_job(app, 1), fixed_job(app, 2, state="failed")
    assert "● idle" in sync_jobs.job_line(idle, None, NOW).plain
    assert "next in 50m" in sync_jobs.job_line(idle, None, NOW).plain
    line = sync_jobs.job_line(idle, {"job_id": idle["id"], "pages": 2, "created": 7, "done": False}, NOW).plain
    assert "▶ running" in line and "40% page 2/5" in line and "+7 ~0 -0" in line
    unknown = sync_jobs.job_line({**idle, "last_counts": {}}, {"pages": 2, "phase": "push", "pushed": 1}, NOW).plain
    assert "page 2" in unknown and "%" not in unknown and "push" in unknown and "1 pushed" in unknown
    estimated = sync_jobs.job_line(idle, {"pages": 1, "created": 50, "unchanged": 10, "remaining": 140}, NOW).plain
    assert "30% 60/200" in estimated
    assert "HTTP 503 from GitHub" in sync_jobs.job_line(failed, None, NOW).plain
    assert sync_jobs.jobs_text([], {}, NOW).plain.startswith("no sync jobs")


async def test_link_relays_checks_and_sync_progress_after_the_snapshot():
    a = fixed_app(1)
    fake = FakeDaemon([a])
    rec = Recorder()
    link = Link("/tmp/x.sock", fake.session_factory, rec.post, first_delay=0.01, max_delay=0.04)
    task = asyncio.create_task(link.run())
    # A check completes while the link is still reading its snapshot: it must not be applied before it.
    fake.before_answer = lambda method: fake.check(a["id"], latency=0.123, at=NOW + 5) if method == "apps.list" \
        else None
    try:
        await rec.wait(Link.Up)
        fake.signal("sync.progress", {"progress": {"job_id": "job_1", "app_id": a["id"], "pages": 1}})
        fake.signal("sync.progress", {"nonsense": True})
        fake.signal("something.new", {"x": 1})
        (checked,) = await rec.wait(Link.Checked)
        assert checked.app["last_check_at"] == NOW + 5 and checked.result["latency"] == 0.123
        (progress,) = await rec.wait(Link.SyncProgress)
        assert progress.progress["pages"] == 1
        kinds = [type(m) for m in rec.messages]
        assert kinds.index(Link.Up) < kinds.index(Link.Checked), "a signal comes after the snapshot it updates"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_sync_column_follows_jobs_and_progress():
    s = DashboardState()
    a, b = fixed_app(1), fixed_app(2)
    s.load([a, b])
    s.take_dirty()
    s.set_jobs([fixed_job(a, 1)])
    assert s.take_dirty() == {a["id"]}, "only the app whose jobs changed"
    column = next(c for c in state_mod.COLUMNS if c.key == "sync")
    assert column.plain(s.apps[a["id"]], NOW) == "50m" and column.plain(s.apps[b["id"]], NOW) == "-"
    assert s.apply_sync_progress({"app_id": a["id"], "job_id": "j", "pages": 2, "done": False}) is False
    assert column.plain(s.apps[a["id"]], NOW) == "▶p2"
    s.apply_sync_progress({"app_id": a["id"], "job_id": "j", "pages": 2, "created": 30, "remaining": 70})
    assert column.plain(s.apps[a["id"]], NOW) == "▶30%", "the provider's estimate when it gives one"
    assert s.apply_sync_progress({"app_id": a["id"], "job_id": "j", "pages": 3, "done": True}) is True
    assert column.plain(s.apps[a["id"]], NOW) == "50m", "the run ended: back to the next run"
    s.set_jobs([fixed_job(b, 2, state="failed")], b["id"])
    assert column.plain(s.apps[b["id"]], NOW) == "✖" and s.apps[a["id"]]["sync"] is not None
    s.set_sort("sync")
    assert s.visible_ids(NOW) == [b["id"], a["id"]], "failed jobs before scheduled ones"
    assert s.apply_sync_progress({"app_id": "int_gone", "pages": 1}) is False
    assert not s.apply_event({"seq": 9, "type": "data.synced", "app_id": a["id"], "payload": {}})
