"""The message bus: hands committed events to their subscribers.

Events reach the bus only after the transaction that recorded them committed (the outbox row is the proof), in
sequence order. A subscriber that raises is logged and the others still get the event (STYLE habit 2): one
broken consumer never blocks another or the command that caused the event.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import structlog

from integd.store.repository import StoredEvent

Subscriber = Callable[[StoredEvent], Awaitable[None] | None]
log = structlog.get_logger("integd.bus")


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []
        self.last_seq = 0

    def subscribe(self, name: str, fn: Subscriber) -> None:
        self._subscribers.append((name, fn))

    def unsubscribe(self, name: str) -> None:
        self._subscribers = [(n, f) for n, f in self._subscribers if n != name]

    async def publish(self, events: list[StoredEvent]) -> None:
        for event in events:
            self.last_seq = max(self.last_seq, event.seq)
            for name, fn in list(self._subscribers):
                try:
                    result = fn(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("bus.subscriber_failed", subscriber=name, event_type=event.type, seq=event.seq)
