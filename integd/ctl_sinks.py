"""integctl subcommands for event sinks (listed in integd.ctl.FEATURES)::

    integctl sinks [list]                  each sink's state, cursor, lag and last error (events.sinks)
    integctl sinks replay NAME --after N   deliver again every event after seq N (events.replay, admins)
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

Render = Callable[[Any], str]


def add_parsers(sub: Any) -> None:
    """Add ``sinks`` to integctl's subcommands."""
    p = sub.add_parser("sinks", help="event sinks: status and replay")
    cmds = p.add_subparsers(dest="sinks_cmd")
    cmds.add_parser("list", help="each sink's state, cursor, lag and last error (the default)")
    rp = cmds.add_parser("replay", help="deliver a sink's events after a sequence number again")
    rp.add_argument("name")
    rp.add_argument("--after", type=int, required=True, help="seq to replay after (0: everything)")


def _ago(at: float | None) -> str:
    return "never" if at is None else f"{max(0.0, time.time() - at):.0f}s ago"


def render_sinks(sinks: list[dict[str, Any]]) -> str:
    """One block per sink, e.g. ``platform  healthy  cursor 42  lag 0``.

    Example:
        >>> render_sinks([])
        'no event sinks configured'
    """
    if not sinks:
        return "no event sinks configured"
    lines = []
    for s in sinks:
        lines.append(f"{s['name']}  {s['state']}  cursor {s['cursor']}  lag {s['lag']}  {s['url']}")
        lines.append(f"  events: {', '.join(s['events'])}; last success {_ago(s['last_success'])}")
        if s["failures"]:
            lines.append(f"  {s['failures']} failed attempt(s) since {_ago(s['failing_since'])}: {s['last_error']}")
    return "\n".join(lines)


def render_replay(r: dict[str, Any]) -> str:
    return (f"{r['sink']}: cursor {r['previous_cursor']} -> {r['cursor']}, "
            f"{r['to_deliver']} event(s) to deliver again")


def plan(a: argparse.Namespace) -> tuple[str, dict[str, Any], Render] | None:
    """(method, params, renderer) for ``integctl sinks ...``; None for other commands."""
    if a.cmd != "sinks":
        return None
    if a.sinks_cmd == "replay":
        return "events.replay", {"sink": a.name, "after": a.after}, render_replay
    return "events.sinks", {}, render_sinks
