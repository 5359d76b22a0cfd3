"""The dashboard's view-model: RPC results and events in, rows, counts and log lines out.

Pure (no Textual, no I/O): the widgets ask it what to show and the app feeds it what the daemon said. It knows
which apps changed since the last flush (``take_dirty``) and whether the row set or its order changed
(``structure_dirty``), so the table can update cells in place and rebuild only when it must.

Events and what they do to a row::

    app.status_changed      patch status and reason at once, then refresh the row from the daemon
    app.disconnected        remove the row
    oauth.flow              the log only (its app_id is a flow id, not an app)
    data.synced, sync.job_changed   the app's sync jobs are re-read (sync.list) for the Sync column
    anything else           refresh the row from the daemon (apps.get), the event goes to the log
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from rich.text import Text

from integtui import format as fmt

LOG_SIZE = 500
SYNC_EVENTS = frozenset({"data.synced", "sync.job_changed"})  # they change an app's jobs, not its row


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    wide_only: bool
    plain: Callable[[dict[str, Any], float], str]
    sort_key: Callable[[dict[str, Any], float], Any]
    styled: Callable[[dict[str, Any], float], str | Text] | None = None
    wide_width: int | None = None  # a wider column when the terminal is wide


def _num(value: Any, missing: float = float("inf")) -> float:
    return float(value) if isinstance(value, (int, float)) else missing


def _sync_order(app: dict[str, Any], _now: float) -> tuple[int, float]:
    """Running first, then failed, then by the next run; apps without sync jobs last."""
    sync = app.get("sync")
    if not sync:
        return (3, 0.0)
    if sync.get("running"):
        return (0, 0.0)
    return (1, 0.0) if sync.get("failed") else (2, _num(sync.get("next")))


def sync_summary(jobs: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """What the Sync column says about an app's jobs (``sync.list`` items); None without any.

    Example:
        >>> sync_summary([{"state": "idle", "next_run_at": 50.0}, {"state": "failed", "next_run_at": 20.0}])
        {'running': False, 'failed': True, 'next': 20.0, 'pages': None}
    """
    jobs = list(jobs)
    if not jobs:
        return None
    due = [j["next_run_at"] for j in jobs if j.get("next_run_at") is not None]
    running = [j for j in jobs if j.get("state") == "running"]
    return {"running": bool(running), "failed": any(j.get("state") in ("failed", "stalled") for j in jobs),
            "next": min(due) if due else None,
            "pages": ((running[0].get("progress") or {}).get("pages") if running else None)}


COLUMNS: tuple[Column, ...] = (
    Column("name", "Name", 15, False, lambda a, _n: a.get("name", ""), lambda a, _n: a.get("name", "").lower(),
           wide_width=22),
    Column("service", "Service", 8, False, lambda a, _n: a.get("service", ""), lambda a, _n: a.get("service", ""),
           wide_width=10),
    Column("category", "Category", 10, True, lambda a, _n: a.get("category", ""),
           lambda a, _n: a.get("category", "")),
    Column("owner", "Owner", 10, True, lambda a, _n: a.get("owner", ""), lambda a, _n: a.get("owner", "")),
    Column("status", "Status", 14, False, lambda a, _n: fmt.status_plain(a.get("status", "")),
           lambda a, _n: fmt.STATUS_ORDER.index(a["status"]) if a.get("status") in fmt.STATUS_ORDER else 99,
           lambda a, _n: fmt.status_text(a.get("status", ""))),
    Column("checked", "Chk", 4, False, lambda a, n: fmt.ago(a.get("last_check_at"), n),
           lambda a, _n: -_num(a.get("last_check_at"), float("-inf"))),
    Column("latency", "Lat", 5, False, lambda a, _n: fmt.latency(a.get("last_latency")),
           lambda a, _n: _num(a.get("last_latency"))),
    Column("limit", "Limit", 13, False, lambda a, _n: fmt.window_plain(a.get("tightest_window"), 4),
           lambda a, _n: -(fmt.window_fraction(a.get("tightest_window")) or -1.0),
           lambda a, _n: fmt.window_text(a.get("tightest_window"), 4)),
    Column("next", "Next", 4, False, lambda a, n: fmt.until(a.get("next_check_at"), n),
           lambda a, _n: _num(a.get("next_check_at"))),
    Column("sync", "Sync", 6, True, lambda a, n: fmt.sync_cell(a.get("sync"), n), _sync_order),
)
CLOCK_COLUMNS = ("checked", "next", "sync")
COLUMN_KEYS = tuple(c.key for c in COLUMNS)


def columns_for(wide: bool) -> tuple[Column, ...]:
    """The columns shown at this width (category and owner need a wide terminal).

    Example:
        >>> [c.key for c in columns_for(False)]
        ['name', 'service', 'status', 'checked', 'latency', 'limit', 'next']
    """
    return tuple(replace(c, width=c.wide_width) if wide and c.wide_width else c
                 for c in COLUMNS if wide or not c.wide_only)


def cell(column: Column, app: dict[str, Any], now: float) -> str | Text:
    """What the table shows in this column for this app, cut to the column's width.

    Example:
        >>> cell(COLUMNS[0], {"name": "GitHub (octo-org)"}, 0.0)
        'GitHub (octo-o…'
    """
    return column.styled(app, now) if column.styled else fmt.clip(column.plain(app, now), column.width)


def row_cells(app: dict[str, Any], now: float, columns: Iterable[Column]) -> list[str | Text]:
    return [cell(c, app, now) for c in columns]


class DashboardState:
    """Everything the main screen shows, kept up to date from RPC results and events.

    Example:
        >>> s = DashboardState()
        >>> s.load([{"id": "a", "name": "one", "status": "connected"}])
        >>> s.apply_event({"seq": 1, "type": "app.status_changed", "app_id": "a",
        ...                "payload": {"new_status": "error", "reason": "HTTP 503"}})
        True
        >>> s.apps["a"]["status"], s.counts()
        ('error', {'error': 1})
    """

    def __init__(self) -> None:
        self.apps: dict[str, dict[str, Any]] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self.last_seq = 0
        self.filter_text = ""
        self.sort_column = "name"
        self.sort_reverse = False
        self.structure_dirty = True
        self.log_dirty = True
        self._dirty: set[str] = set()
        self._by_status: dict[str, int] = {}  # kept as apps change: 10k apps are not recounted per flush

    # ---- feeding it ---------------------------------------------------------------------------------------
    def load(self, apps: Iterable[dict[str, Any]]) -> None:
        """Replace every app with a fresh ``apps.list`` result."""
        self.apps = {a["id"]: dict(a) for a in apps}
        self._by_status = {}
        for a in self.apps.values():
            self._count(None, a)
        self._dirty.clear()
        self.structure_dirty = True

    def upsert(self, app: dict[str, Any]) -> None:
        """Add or update one app from ``apps.get``, ``apps.connect``, ``apps.configure`` and the like."""
        if app.get("status") == "disconnected":
            self.remove(app["id"])
            return
        known = self.apps.get(app["id"])
        self.apps[app["id"]] = {**(known or {}), **app}
        if known is None:
            self._count(None, self.apps[app["id"]])
            self.structure_dirty = True
            self._dirty.add(app["id"])  # a row drawn for an earlier app of this id must not be reused
        else:
            self._changed(app["id"], known)

    def remove(self, app_id: str) -> None:
        if (gone := self.apps.pop(app_id, None)) is not None:
            self._count(gone, None)
            self.structure_dirty = True
            self._dirty.discard(app_id)

    def set_jobs(self, jobs: Iterable[dict[str, Any]], app_id: str | None = None) -> None:
        """Put ``sync.list`` results into the rows' Sync column (only ``app_id``'s when given, else every app's)."""
        by_app: dict[str, list[dict[str, Any]]] = {}
        for job in jobs:
            by_app.setdefault(job.get("app_id", ""), []).append(job)
        for target in [app_id] if app_id is not None else list(self.apps):
            app = self.apps.get(target)
            summary = sync_summary(by_app.get(target, ()))
            if app is not None and app.get("sync") != summary:
                before = dict(app)
                app["sync"] = summary
                self._changed(target, before)

    def apply_sync_progress(self, progress: dict[str, Any]) -> bool:
        """A ``sync.progress`` notification: the row shows the run; True when it ended (re-read the jobs)."""
        app = self.apps.get(progress.get("app_id", ""))
        if app is None:
            return False
        before = dict(app)
        sync = dict(app.get("sync") or {"failed": False, "next": None})
        done = bool(progress.get("done"))
        remaining = progress.get("remaining")
        pulled = sum(int(progress.get(k) or 0) for k in ("created", "updated", "unchanged"))
        total = None if remaining is None else pulled + int(remaining)
        percent = min(99, 100 * pulled // total) if total else None
        sync.update(running=not done, pages=None if done else progress.get("pages"),
                    percent=None if done else percent)
        app["sync"] = sync
        self._changed(app["id"], before)
        return done

    def log_event(self, event: dict[str, Any]) -> None:
        """Put an event in the log (newest first) without touching any row."""
        self.log.appendleft(event)
        self.last_seq = max(self.last_seq, int(event.get("seq", 0)))
        self.log_dirty = True

    def load_log(self, events: Iterable[dict[str, Any]]) -> None:
        """Replace the log with a backlog (oldest first, as ``events.list`` pages them)."""
        self.log.clear()
        for event in events:
            self.log_event(event)
        self.log_dirty = True

    def apply_event(self, event: dict[str, Any]) -> bool:
        """Log a live event and patch its row; True when the row should be refreshed from the daemon."""
        self.log_event(event)
        app_id = event.get("app_id", "")
        kind = event.get("type", "")
        payload = event.get("payload") or {}
        if kind == "app.disconnected":
            self.remove(app_id)
            return False
        if kind == "oauth.flow":
            return False  # its app_id is the flow's id; the new app arrives with its own app.connected
        if kind in SYNC_EVENTS:
            return False  # the row's sync jobs are re-read instead (see IntegApp)
        known = self.apps.get(app_id)
        if kind == "app.status_changed" and known is not None and payload.get("new_status"):
            before = dict(known)
            known["status"] = payload["new_status"]
            known["status_reason"] = payload.get("reason", "")
            self._changed(app_id, before)
        return True  # an unshare that hides the app comes back from apps.get as not_found

    def _changed(self, app_id: str, before: dict[str, Any]) -> None:
        after = self.apps[app_id]
        self._dirty.add(app_id)
        self._count(before, after)
        column = next((c for c in COLUMNS if c.key == self.sort_column), None)
        if column and column.sort_key(before, 0.0) != column.sort_key(after, 0.0):
            self.structure_dirty = True
        if self.filter_text and self.matches(before, 0.0) != self.matches(after, 0.0):
            self.structure_dirty = True

    def take_dirty(self) -> set[str]:
        """The apps whose cells changed since the last call (and are still here)."""
        dirty, self._dirty = self._dirty, set()
        return {a for a in dirty if a in self.apps}

    # ---- reading it ---------------------------------------------------------------------------------------
    def matches(self, app: dict[str, Any], now: float) -> bool:
        """Whether the app's visible text (every column, wide or not) contains the filter, case-blind."""
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in c.plain(app, now).lower() for c in COLUMNS if c.key not in CLOCK_COLUMNS) or \
            needle in str(app.get("status_reason", "")).lower()

    def visible_ids(self, now: float) -> list[str]:
        """The ids of the apps to show, filtered and sorted."""
        column = next((c for c in COLUMNS if c.key == self.sort_column), COLUMNS[0])
        chosen = [a for a in self.apps.values() if self.matches(a, now)]
        chosen.sort(key=lambda a: (column.sort_key(a, now), a.get("name", "").lower(), a["id"]),
                    reverse=self.sort_reverse)
        return [a["id"] for a in chosen]

    def set_sort(self, column_key: str) -> None:
        """Sort by this column; choosing the current column again flips the direction."""
        if column_key not in COLUMN_KEYS:
            raise ValueError(f"unknown column {column_key!r}; expected one of {', '.join(COLUMN_KEYS)}")
        if column_key == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column_key, False
        self.structure_dirty = True

    def set_filter(self, text: str) -> None:
        if text != self.filter_text:
            self.filter_text = text
            self.structure_dirty = True

    def _count(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        """Move one app between the status counts (None: it was not there / is gone)."""
        by = self._by_status
        if before is not None:
            old = before.get("status", "?")
            by[old] -= 1
            if not by[old]:
                del by[old]
        if after is not None:
            new = after.get("status", "?")
            by[new] = by.get(new, 0) + 1

    def counts(self) -> dict[str, int]:
        """Apps by status, in the order the header shows them."""
        by = self._by_status
        return {s: by[s] for s in (*fmt.STATUS_ORDER, *sorted(by)) if s in by}

    def log_lines(self, types: frozenset[str] | None = None, app_id: str | None = None,
                  limit: int = 200) -> list[dict[str, Any]]:
        """The newest events first, only of these types and this app when given."""
        out = []
        for event in self.log:
            if (types is None or event.get("type") in types) and (app_id is None or event.get("app_id") == app_id):
                out.append(event)
                if len(out) >= limit:
                    break
        return out

    def app_name(self, app_id: str) -> str:
        app = self.apps.get(app_id)
        return app.get("name", app_id) if app else app_id
