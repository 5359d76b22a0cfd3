"""integctl subcommands for data synchronisation (listed in integd.ctl.FEATURES)::

    integctl sync list [--app APP]                       sync.list
    integctl sync create APP STREAM RESOURCE [--direction pull|push|bidirectional] [--every MIN | --hourly |
                         --daily | --cron EXPR | --realtime] [--conflicts POLICY] [--batch N]      sync.create
    integctl sync get|cancel|pause|resume|delete JOB     sync.get ...
    integctl sync run JOB [--full] [--wait]              sync.run
    integctl sync conflicts JOB [--all]                  sync.conflicts
    integctl sync resolve JOB CONFLICT --keep local|remote
    integctl records changes [--after N] [--app APP] [--job JOB] [--limit N]
    integctl records get JOB REMOTE_ID
    integctl records put JOB [REMOTE_ID] --data JSON [--base-version V]
    integctl records delete JOB REMOTE_ID [--base-version V]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

Render = Callable[[Any], str]
_JOB_CMDS = ("get", "cancel", "pause", "resume", "delete")


def add_parsers(sub: Any) -> None:
    """Add ``sync`` and ``records`` to integctl's subcommands."""
    s = sub.add_parser("sync", help="sync jobs: create, run, watch, resolve conflicts")
    cmds = s.add_subparsers(dest="sync_cmd", required=True)
    ls = cmds.add_parser("list", help="the sync jobs you may see")
    ls.add_argument("--app")
    cr = cmds.add_parser("create", help="sync an app's stream (github issues OWNER/REPO, slack messages CHANNEL)")
    cr.add_argument("app")
    cr.add_argument("stream")
    cr.add_argument("resource")
    cr.add_argument("--direction", choices=("pull", "push", "bidirectional"), default="pull")
    freq = cr.add_mutually_exclusive_group()
    freq.add_argument("--every", type=int, metavar="MINUTES")
    freq.add_argument("--hourly", action="store_true")
    freq.add_argument("--daily", action="store_true")
    freq.add_argument("--cron", metavar="EXPR")
    freq.add_argument("--realtime", action="store_true", help="run on webhooks only")
    cr.add_argument("--conflicts", choices=("latest_wins", "remote_wins", "local_wins", "manual"),
                    default="latest_wins")
    cr.add_argument("--batch", type=int, default=100)
    for name in _JOB_CMDS:
        cmds.add_parser(name, help=f"{name} a sync job").add_argument("job")
    rn = cmds.add_parser("run", help="run a job now")
    rn.add_argument("job")
    rn.add_argument("--full", action="store_true", help="a full refresh (finds deletions)")
    rn.add_argument("--wait", action="store_true", help="answer when the run has ended")
    cf = cmds.add_parser("conflicts", help="a job's parked conflicts")
    cf.add_argument("job")
    cf.add_argument("--all", action="store_true", help="include resolved ones")
    rs = cmds.add_parser("resolve", help="settle a parked conflict")
    rs.add_argument("job")
    rs.add_argument("conflict", type=int)
    rs.add_argument("--keep", choices=("local", "remote"), required=True)

    r = sub.add_parser("records", help="synced records and the change feed")
    rc = r.add_subparsers(dest="records_cmd", required=True)
    ch = rc.add_parser("changes", help="record changes after a sequence number")
    ch.add_argument("--after", type=int, default=0)
    ch.add_argument("--app")
    ch.add_argument("--job")
    ch.add_argument("--limit", type=int, default=500)
    gt = rc.add_parser("get", help="one record")
    gt.add_argument("job")
    gt.add_argument("remote_id")
    pt = rc.add_parser("put", help="create (no REMOTE_ID) or change a record; it is pushed upstream")
    pt.add_argument("job")
    pt.add_argument("remote_id", nargs="?")
    pt.add_argument("--data", required=True, help="the record's data as a JSON object")
    pt.add_argument("--base-version", type=int)
    dl = rc.add_parser("delete", help="delete a record; the deletion is pushed")
    dl.add_argument("job")
    dl.add_argument("remote_id")
    dl.add_argument("--base-version", type=int)


def _frequency(a: argparse.Namespace) -> dict[str, Any]:
    if a.every is not None:
        return {"kind": "interval", "minutes": a.every}
    if a.cron:
        return {"kind": "cron", "cron": a.cron}
    for kind in ("hourly", "daily", "realtime"):
        if getattr(a, kind):
            return {"kind": kind}
    return {"kind": "manual"}


def _counts(c: dict[str, Any]) -> str:
    return " ".join(f"{k} {c[k]}" for k in ("created", "updated", "deleted", "pushed", "conflicts") if c.get(k))


def render_job(j: dict[str, Any]) -> str:
    """``sync_ab12  github issues:octo/demo  pull  idle  (created 57)``

    Example:
        >>> render_job({"id": "sync_1", "service": "github", "key": "issues:o/r", "direction": "pull",
        ...             "state": "idle", "last_counts": {"created": 2}, "last_error": None, "progress": None})
        'sync_1  github issues:o/r  pull  idle  (created 2)'
        >>> print(render_job({"id": "sync_2", "service": "google_drive", "key": "files:me", "direction": "pull",
        ...                   "state": "idle", "last_counts": {}, "progress": None,
        ...                   "push_channel": {"id": "ch_1", "expires_at": 1800000000.0}}))
        sync_2  google_drive files:me  pull  idle
          push channel ch_1 until 2027-01-15 08:00 UTC
    """
    line = f"{j['id']}  {j['service']} {j['key']}  {j['direction']}  {j['state']}"
    counts = _counts(j["progress"] or j["last_counts"])
    if counts:
        line += f"  ({counts})"
    if j.get("last_error"):
        line += f"\n  last error: {j['last_error']}"
    channel = j.get("push_channel")
    if channel:
        until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(channel["expires_at"]))
        line += f"\n  push channel {channel['id']} until {until}"
    return line


def render_jobs(jobs: list[dict[str, Any]]) -> str:
    return "\n".join(render_job(j) for j in jobs) if jobs else "no sync jobs"


def render_run(r: dict[str, Any]) -> str:
    return ("started: " if r["started"] else "already running: ") + render_job(r["job"])


def render_conflicts(cs: list[dict[str, Any]]) -> str:
    if not cs:
        return "no conflicts"
    return "\n".join(f"#{c['id']}  record {c['remote_id']}  {c['policy']}  "
                     f"{c['resolution'] or 'parked'}" for c in cs)


def render_changes(page: dict[str, Any]) -> str:
    lines = [f"{c['seq']}  {c['op']:<8} {c['origin']:<6} {c['stream']} {c['remote_id']} v{c['version']}"
             for c in page["changes"]]
    lines.append(f"last_seq {page['last_seq']}")
    return "\n".join(lines)


def render_record(r: dict[str, Any]) -> str:
    head = f"{r['stream']} {r['remote_id']} v{r['version']}  {r['sync_state']}" + ("  deleted" if r["deleted"] else "")
    return head + "\n" + json.dumps(r["data"], indent=2, sort_keys=True)


def _data(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise SystemExit(f"integctl: --data is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise SystemExit("integctl: --data must be a JSON object")
    return data


def plan(a: argparse.Namespace) -> tuple[str, dict[str, Any], Render] | None:
    """(method, params, renderer) for ``integctl sync ...`` and ``integctl records ...``; None otherwise."""
    if a.cmd == "sync":
        c = a.sync_cmd
        if c == "list":
            return "sync.list", {"app_id": a.app}, render_jobs
        if c == "create":
            return "sync.create", {"app_id": a.app, "stream": a.stream, "resource": a.resource,
                                   "direction": a.direction, "frequency": _frequency(a),
                                   "conflict_resolution": a.conflicts, "batch_size": a.batch}, render_job
        if c in _JOB_CMDS:
            render = (lambda r: f"{r['id']} deleted") if c == "delete" else render_job
            return f"sync.{c}", {"job_id": a.job}, render
        if c == "run":
            return "sync.run", {"job_id": a.job, "full": a.full, "wait": a.wait}, render_run
        if c == "conflicts":
            return "sync.conflicts", {"job_id": a.job, "include_resolved": a.all}, render_conflicts
        return ("sync.resolve", {"job_id": a.job, "conflict_id": a.conflict, "keep": a.keep},
                lambda r: f"conflict {r['conflict_id']}: {r['resolution']}")
    if a.cmd == "records":
        c = a.records_cmd
        if c == "changes":
            return "records.changes", {"after": a.after, "app_id": a.app, "job_id": a.job,
                                       "limit": a.limit}, render_changes
        if c == "get":
            return "records.get", {"job_id": a.job, "remote_id": a.remote_id}, render_record
        if c == "put":
            return "records.put", {"job_id": a.job, "remote_id": a.remote_id, "data": _data(a.data),
                                   "base_version": a.base_version}, render_record
        return "records.delete", {"job_id": a.job, "remote_id": a.remote_id,
                                  "base_version": a.base_version}, render_record
    return None
