"""How the dashboard writes things: statuses, durations, latencies and rate-limit bars.

Pure functions of their arguments (the clock is always passed in as ``now``), so that the same row renders the
same way in a test, a snapshot and on a live terminal. Every status carries a symbol and a word as well as a
colour, so that the table reads with ``NO_COLOR`` and on a monochrome terminal.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

# status -> (symbol, style); the word is the status itself
STATUS_LOOK: dict[str, tuple[str, str]] = {
    "connected": ("●", "green"),
    "rate_limited": ("▲", "yellow"),
    "error": ("✖", "bold red"),
    "unauthorized": ("⊘", "magenta"),
    "pending": ("…", "cyan"),
    "disconnected": ("○", "dim"),
}
STATUS_ORDER = ("error", "unauthorized", "rate_limited", "pending", "connected", "disconnected")
EVENT_STYLE = {
    "app.connected": "green", "app.disconnected": "dim", "app.status_changed": "cyan",
    "integration.failed": "red", "rate_limit.exceeded": "yellow", "data.synced": "blue",
    "app.configured": "", "app.shared": "", "oauth.flow": "cyan", "sync.job_changed": "blue",
}


def status_plain(status: str) -> str:
    """The symbol and the word.

    Example:
        >>> status_plain("rate_limited")
        '▲ rate_limited'
    """
    symbol, _ = STATUS_LOOK.get(status, ("?", ""))
    return f"{symbol} {status}"


def status_text(status: str) -> Text:
    """The symbol and the word, coloured."""
    return Text(status_plain(status), style=STATUS_LOOK.get(status, ("?", ""))[1])


def duration(seconds: float | None) -> str:
    """A short human duration: ``"-"`` for unknown, then s, m, h, d.

    Example:
        >>> [duration(x) for x in (None, 4.2, 125, 7300, 200000)]
        ['-', '4s', '2m', '2h', '2d']
    """
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def uptime(seconds: float) -> str:
    """Uptime with two units.

    Example:
        >>> uptime(3725)
        '1h02m'
    """
    s = max(0, int(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def ago(ts: float | None, now: float) -> str:
    """Time since ``ts``.

    Example:
        >>> ago(100.0, 130.0), ago(None, 1.0)
        ('30s', '-')
    """
    return "-" if ts is None else duration(now - ts)


def until(ts: float | None, now: float) -> str:
    """Time until ``ts``; ``"now"`` once it has passed.

    Example:
        >>> until(190.0, 130.0), until(100.0, 130.0)
        ('1m', 'now')
    """
    if ts is None:
        return "-"
    return "now" if ts <= now else duration(ts - now)


def latency(seconds: float | None) -> str:
    """A latency in ms below a second, in seconds above.

    Example:
        >>> latency(0.0423), latency(1.5), latency(None)
        ('42ms', '1.50s', '-')
    """
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.2f}s"


def clock_time(ts: float | None, *, utc: bool = False) -> str:
    """A wall-clock time of day (local unless ``utc``).

    Example:
        >>> clock_time(3661.0, utc=True)
        '01:01:01'
    """
    if ts is None:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(ts) if utc else time.localtime(ts))


def bar(fraction: float, width: int) -> str:
    """A bar of ``width`` cells, full blocks for the used part.

    Example:
        >>> bar(0.5, 8)
        '████░░░░'
    """
    fraction = min(1.0, max(0.0, fraction))
    full = round(fraction * width)
    return "█" * full + "░" * (width - full)


def window_fraction(window: dict[str, Any] | None) -> float | None:
    """How much of the window is used, 0..1; None without a window or a limit."""
    if not window or not window.get("limit"):
        return None
    return min(1.0, max(0.0, window.get("used", 0) / window["limit"]))


def window_plain(window: dict[str, Any] | None, width: int) -> str:
    """The tightest window as ``"hour ███░░ 63%"`` (bar of ``width`` cells); ``"-"`` without one.

    Example:
        >>> window_plain({"name": "minute", "limit": 60, "used": 30, "remaining": 30, "resets_at": 0}, 4)
        'min ██░░  50%'
    """
    fraction = window_fraction(window)
    if fraction is None or window is None:
        return "-"
    return f"{str(window.get('name', ''))[:3]:<3} {bar(fraction, width)} {round(fraction * 100):>3}%"


def window_text(window: dict[str, Any] | None, width: int) -> Text:
    """The tightest window, coloured by how full it is."""
    fraction = window_fraction(window)
    style = "" if fraction is None else "red" if fraction >= 0.9 else "yellow" if fraction >= 0.7 else "green"
    return Text(window_plain(window, width), style=style)


def sync_cell(sync: dict[str, Any] | None, now: float) -> str:
    """An app's sync jobs in one cell: running (with the pages so far), failed, or when the next run is due.

    Example:
        >>> [sync_cell(s, 100.0) for s in (None, {"running": True, "pages": 3}, {"running": True, "percent": 40},
        ...                                {"failed": True}, {"next": 160.0}, {"next": None})]
        ['-', '▶p3', '▶40%', '✖', '1m', 'manual']
    """
    if not sync:
        return "-"
    if sync.get("running"):
        if sync.get("percent") is not None:
            return f"▶{sync['percent']}%"
        return f"▶p{sync['pages']}" if sync.get("pages") else "▶"
    if sync.get("failed"):
        return "✖"
    return until(sync["next"], now) if sync.get("next") is not None else "manual"  # runs on demand only


def clip(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` cells with an ellipsis.

    Example:
        >>> clip("GitHub (octo-org)", 10)
        'GitHub (o…'
    """
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def event_summary(event: dict[str, Any]) -> str:
    """One line saying what the event means, from its payload.

    Example:
        >>> event_summary({"type": "app.status_changed",
        ...                "payload": {"old_status": "connected", "new_status": "error", "reason": "HTTP 503"}})
        'connected → error: HTTP 503'
    """
    p = event.get("payload") or {}
    kind = event.get("type", "")
    if kind == "app.status_changed":
        reason = f": {p['reason']}" if p.get("reason") else ""
        return f"{p.get('old_status', '?')} → {p.get('new_status', '?')}{reason}"
    if kind == "integration.failed":
        status = f" (HTTP {p['status']})" if p.get("status") else ""
        return f"{p.get('category', 'failed')}{status}: {p.get('message', '')}"
    if kind == "rate_limit.exceeded":
        return f"window {p.get('window', '?')}, retry after {duration(p.get('retry_after'))} ({p.get('source', '?')})"
    if kind == "app.shared":
        verb = "shared with" if p.get("shared", True) else "unshared from"
        return f"{verb} {p.get('with_user', '?')}"
    if kind == "app.configured":
        changes = p.get("changes")
        return "changed " + ", ".join(sorted(changes)) if isinstance(changes, dict) and changes else "configured"
    if kind == "app.connected":
        return f"{p.get('service', '?')} via {p.get('auth_mode', 'api_key')}"
    if kind == "data.synced":
        return (f"{p.get('stream', '?')}: +{p.get('created', 0)} ~{p.get('updated', 0)} -{p.get('deleted', 0)}"
                f" in {duration(p.get('duration'))}")
    if kind == "oauth.flow":
        error = f": {p['error']}" if p.get("error") else ""
        return f"{p.get('service', '?')} sign-in ({p.get('flow', '?')}) {p.get('state', '?')}{error}"
    if kind == "sync.job_changed":
        return f"{p.get('stream', '?')} job {p.get('change', '?')} ({p.get('state', '?')})"
    if kind == "app.disconnected":
        return f"disconnected: {p['reason']}" if p.get("reason") else "disconnected"
    return ", ".join(f"{k}={v}" for k, v in sorted(p.items()))[:120]
