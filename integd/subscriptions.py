"""Live event subscriptions over the WebSocket (``events.subscribe``).

Each subscription belongs to one RpcConnection and sees only the events of apps its user may see (own apps, apps
shared with them; everything for an admin). Events are sent as the JSON-RPC notification ``event`` with params
``{"subscription": id, "event": {...}}`` in commit order. ``after`` replays committed events first; live events
arriving during the replay are buffered and sent after it, without duplicates (by sequence number).

Features may also push live notifications that are not outbox events (``notify_app``, e.g. ``sync.progress``):
same visibility rule, no sequence number, no replay.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from integd.rpc.server import RpcConnection
from integd.store.repository import AppStore, StoredEvent


@dataclass
class Subscription:
    id: str
    connection: RpcConnection
    user: str
    admin: bool
    types: frozenset[str] | None
    app_id: str | None
    shared: set[str] = field(default_factory=set)      # app ids shared with this user
    last_sent: int = 0
    replaying: bool = False
    buffer: list[StoredEvent] = field(default_factory=list)

    def wants(self, e: StoredEvent) -> bool:
        if e.type == "app.shared" and e.payload.get("with_user") == self.user:
            (self.shared.add if e.payload.get("shared") else self.shared.discard)(e.app_id)
        if self.types is not None and e.type not in self.types:
            return False
        if self.app_id is not None and e.app_id != self.app_id:
            return False
        return self.admin or e.user == self.user or e.app_id in self.shared or (
            e.type == "app.shared" and e.payload.get("with_user") == self.user)


class Subscriptions:
    def __init__(self, store: AppStore) -> None:
        self.store = store
        self._subs: dict[str, Subscription] = {}

    def __len__(self) -> int:
        return len(self._subs)

    async def subscribe(self, connection: RpcConnection, *, user: str, admin: bool, types: list[str] | None,
                        app_id: str | None, after: int | None, shared: set[str]) -> Subscription:
        sub = Subscription(id="sub_" + uuid.uuid4().hex[:16], connection=connection, user=user, admin=admin,
                           types=frozenset(types) if types else None, app_id=app_id, shared=shared)
        sub.last_sent = await self.store.last_event_seq() if after is None else after
        sub.replaying = after is not None
        self._subs[sub.id] = sub
        connection.state.setdefault("subscriptions", set()).add(sub.id)
        return sub

    async def replay(self, sub: Subscription) -> None:
        """Send committed events after ``sub.last_sent``, then whatever arrived live meanwhile."""
        while sub.replaying:
            batch = await self.store.events_after(sub.last_sent, limit=500)
            for e in batch:
                await self._send(sub, e)
            if len(batch) < 500:
                pending, sub.buffer = sub.buffer, []
                for e in pending:
                    await self._send(sub, e)
                sub.replaying = False

    def unsubscribe(self, sub_id: str, connection: RpcConnection) -> bool:
        sub = self._subs.get(sub_id)
        if sub is None or sub.connection is not connection:
            return False
        del self._subs[sub_id]
        connection.state.get("subscriptions", set()).discard(sub_id)
        return True

    def connection_closed(self, connection: RpcConnection) -> None:
        for sub_id in list(connection.state.get("subscriptions", ())):
            self._subs.pop(sub_id, None)

    async def publish(self, event: StoredEvent) -> None:
        for sub in list(self._subs.values()):
            if sub.connection.closed:
                self._subs.pop(sub.id, None)
                continue
            if sub.replaying:
                sub.buffer.append(event)
                continue
            await self._send(sub, event)

    async def notify_app(self, app_id: str, owner: str, method: str, params: dict[str, Any]) -> int:
        """Send a live, non-outbox notification (e.g. ``sync.progress``) to every subscription that may see
        ``app_id``; ``params`` gains the subscription id. Not replayed, not sequenced: a dashboard signal only.
        A subscription filtered by ``types`` gets it only if ``method`` is one of them."""
        sent = 0
        for sub in list(self._subs.values()):
            if sub.connection.closed or sub.replaying:
                continue
            if sub.types is not None and method not in sub.types:
                continue
            if sub.app_id is not None and sub.app_id != app_id:
                continue
            if sub.admin or sub.user == owner or app_id in sub.shared:
                await sub.connection.notify(method, {"subscription": sub.id, **params})
                sent += 1
        return sent

    async def _send(self, sub: Subscription, e: StoredEvent) -> None:
        if e.seq <= sub.last_sent or not sub.wants(e):
            sub.last_sent = max(sub.last_sent, e.seq)
            return
        sub.last_sent = e.seq
        params: dict[str, Any] = {"subscription": sub.id, "event": e.as_dict()}
        await sub.connection.notify("event", params)
