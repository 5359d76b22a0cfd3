"""The line at the top of the main screen: daemon version and uptime, apps by status, filter and sort."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from integtui import format as fmt


def status_line(status: dict[str, Any] | None, fetched_at: float, now: float, counts: dict[str, int],
                *, connected: bool, filter_text: str = "", sort: str = "", width: int = 200) -> Text:
    """The header's text; the status words go when it would not fit in ``width``.

    Example:
        >>> status_line({"version": "0.1.0", "uptime": 60}, 100.0, 130.0, {"connected": 2, "error": 1},
        ...             connected=True).plain
        'integd 0.1.0 · up 1m30s · 3 apps  ● 2 connected  ✖ 1 error'
        >>> status_line(None, 0, 0, {"connected": 2, "error": 1}, connected=False, width=30).plain
        'integd · offline · 3 apps  ● 2  ✖ 1'
    """
    line = _line(status, fetched_at, now, counts, connected, filter_text, sort, words=True)
    if line.cell_len > width:
        line = _line(status, fetched_at, now, counts, connected, filter_text, sort, words=False)
    return line


def _line(status: dict[str, Any] | None, fetched_at: float, now: float, counts: dict[str, int], connected: bool,
          filter_text: str, sort: str, *, words: bool) -> Text:
    line = Text()
    if status:
        line.append(f"integd {status.get('version', '?')}", style="bold")
        up = float(status.get("uptime", 0)) + (now - fetched_at if connected else 0)
        line.append(f" · up {fmt.uptime(up)}")
    else:
        line.append("integd", style="bold")
    if not connected:
        line.append(" · offline", style="bold red")
    total = sum(counts.values())
    line.append(f" · {total} app{'s' if total != 1 else ''}")
    for name, n in counts.items():
        symbol, style = fmt.STATUS_LOOK.get(name, ("?", ""))
        line.append("  ")
        line.append(f"{symbol} {n} {name}" if words else f"{symbol} {n}", style=style)
    if filter_text:
        line.append(f" · /{filter_text}", style="bold")
    if sort:
        line.append(f" · sort {sort}", style="dim")
    return line


class StatusLine(Widget):
    """Shows ``status_line``; the app calls ``show`` on each flush. One line high, so a change repaints that line
    and never re-lays out the screen (a ``Static.update`` would)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = Text()

    def show(self, text: Text) -> None:
        if self.text.plain == text.plain and self.text.spans == text.spans:
            return  # an idle dashboard should cost nothing
        self.text = text
        self.refresh()

    def render(self) -> Text:
        return self.text
