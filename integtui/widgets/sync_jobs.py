"""An app's sync jobs as the detail screen shows them: one line per job, a progress bar while it runs.

Pure (Rich text from dicts, the clock passed in). ``sync.list`` gives the jobs (``SyncJobInfo``); the live
``sync.progress`` notifications give the running counts. The bar is the provider's own estimate when it gives one
(``remaining``: records still to pull, so pulled / (pulled + remaining)); otherwise the pages committed against
the pages the job's previous run took, held at 99 % until the run says it is done; with neither, the pages
counted so far stand in for a percentage::

    issues   octo/repo      ▶ running  ██████░░░░ 60% 120/200 · +120 ~3 -0
    issues   octo/web       ▶ running  ███░░░░░░░ 30% page 3/10 · +300 ~0 -0
    issues   octo/web       ● idle     last ok 3m ago · +1204 ~40 -2 total · next in 55m
    messages C0123          ✖ failed   HTTP 503 from Slack (last ok 2h ago)
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from integtui import format as fmt

BAR = 10
STATE_LOOK: dict[str, tuple[str, str]] = {
    "running": ("▶", "cyan"),
    "idle": ("●", "green"),
    "paused": ("‖", "yellow"),
    "stalled": ("▲", "yellow"),
    "failed": ("✖", "bold red"),
    "cancelled": ("○", "dim"),
}


def pulled(progress: dict[str, Any]) -> int:
    """Records this run has pulled so far (what ``remaining`` counts down against)."""
    return sum(int(progress.get(k) or 0) for k in ("created", "updated", "unchanged"))


def run_fraction(progress: dict[str, Any], previous_pages: int) -> float | None:
    """How far a run is, 0..1: from the provider's ``remaining`` if given, else pages over the previous run's;
    None without either.

    Example:
        >>> run_fraction({"created": 120, "remaining": 80}, 0), run_fraction({"pages": 3}, 5)
        (0.6, 0.6)
        >>> run_fraction({"pages": 9}, 5), run_fraction({"pages": 2, "done": True}, 0)
        (0.99, 1.0)
        >>> run_fraction({"pages": 2, "remaining": None}, 0) is None
        True
    """
    if progress.get("done"):
        return 1.0
    remaining = progress.get("remaining")
    if remaining is not None:
        total = pulled(progress) + int(remaining)
        return min(0.99, pulled(progress) / total) if total > 0 else 0.0
    if previous_pages <= 0:
        return None
    return min(0.99, int(progress.get("pages", 0)) / previous_pages)


def counts_text(counts: dict[str, Any]) -> str:
    """``+created ~updated -deleted`` (and pushed or conflicts when there were any).

    Example:
        >>> counts_text({"created": 120, "updated": 3, "deleted": 0, "conflicts": 1})
        '+120 ~3 -0 · 1 conflict'
    """
    text = f"+{counts.get('created', 0)} ~{counts.get('updated', 0)} -{counts.get('deleted', 0)}"
    if counts.get("pushed"):
        text += f" · {counts['pushed']} pushed"
    if counts.get("conflicts"):
        text += f" · {counts['conflicts']} conflict{'s' if counts['conflicts'] != 1 else ''}"
    return text


def job_line(job: dict[str, Any], progress: dict[str, Any] | None, now: float) -> Text:
    """One job: stream, resource, state, then the bar while it runs or its last result otherwise.

    Example:
        >>> job_line({"stream": "issues", "resource": "octo/repo", "state": "idle", "last_success_at": 0.0,
        ...           "totals": {"created": 10}, "next_run_at": 3600.0}, None, 180.0).plain
        'issues   octo/repo      ● idle     last ok 3m ago · +10 ~0 -0 total · next in 57m'
        >>> job_line({"stream": "files", "resource": "me", "state": "idle", "last_success_at": 0.0, "totals": {},
        ...           "next_run_at": None, "push_channel": {"id": "ch_1", "expires_at": 90180.0}}, None, 180.0).plain
        'files    me             ● idle     last ok 3m ago · +0 ~0 -0 total · push channel for 1d'
    """
    state = "running" if progress is not None and not progress.get("done") else str(job.get("state", "?"))
    symbol, style = STATE_LOOK.get(state, ("?", ""))
    line = Text(f"{fmt.clip(str(job.get('stream', '?')), 8):<8} {fmt.clip(str(job.get('resource', '')), 14):<14} ")
    line.append(f"{symbol} {state:<9}", style=style)
    if state == "running":
        running = progress if progress is not None else (job.get("progress") or {})
        previous = int((job.get("last_counts") or {}).get("pages", 0))
        fraction = run_fraction(running, previous)
        pages = int(running.get("pages", 0))
        if fraction is None:
            line.append(fmt.bar(0.0, BAR), style="dim")
            line.append(f" page {pages}")
        else:
            line.append(fmt.bar(fraction, BAR), style="cyan")
            done = pulled(running)
            where = (f"{done}/{done + int(running['remaining'])}" if running.get("remaining") is not None
                     else f"page {pages}/{max(previous, pages)}")
            line.append(f" {round(fraction * 100):>2}% {where}")
        phase = f" {running['phase']}" if running.get("phase") == "push" else ""
        line.append(f"{phase} · {counts_text(running)}")
        return line
    if state == "failed" and job.get("last_error"):
        line.append(str(job["last_error"]), style="red")
        line.append(f" (last ok {fmt.ago(job.get('last_success_at'), now)} ago)", style="dim")
        return line
    line.append(f"last ok {fmt.ago(job.get('last_success_at'), now)} ago · {counts_text(job.get('totals') or {})}"
                f" total")
    if job.get("next_run_at") is not None:
        line.append(f" · next in {fmt.until(job['next_run_at'], now)}")
    elif job.get("push_channel"):               # realtime: heard through a provider push channel
        line.append(f" · push channel for {fmt.until(job['push_channel']['expires_at'], now)}", style="green")
    return line


def jobs_text(jobs: list[dict[str, Any]], progress: dict[str, dict[str, Any]], now: float) -> Text:
    """Every job of the app, one line each; ``progress`` maps a job id to its latest running counts."""
    if not jobs:
        return Text("no sync jobs (integctl sync create ...)", style="dim")
    return Text("\n").join(job_line(j, progress.get(j.get("id", "")), now) for j in jobs)
