"""Domain events: facts recorded by the aggregates and published after the state that caused them commits.

Each event has a stable ``type`` string (the name other domains subscribe to), the app and the owning user,
when it happened, and a payload of plain JSON values. None ever carries a secret.

>>> e = AppConnectedEvent(app_id="int_" + "0" * 32, user="alice", occurred_at=0.0, service="github")
>>> e.type, e.payload()["service"]
('app.connected', 'github')
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    type: ClassVar[str] = "event"
    app_id: str
    user: str
    occurred_at: float
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def payload(self) -> dict[str, Any]:
        base = {f.name for f in fields(DomainEvent)}
        return {k: v for k, v in asdict(self).items() if k not in base}


@dataclass(frozen=True, kw_only=True)
class AppConnectedEvent(DomainEvent):
    type: ClassVar[str] = "app.connected"
    service: str
    name: str = ""
    auth_mode: str = "api_key"


@dataclass(frozen=True, kw_only=True)
class AppDisconnectedEvent(DomainEvent):
    type: ClassVar[str] = "app.disconnected"
    service: str
    reason: str = "user request"
    revocation: dict[str, Any] | None = None   # OAuth apps: {"revoked": bool | None, "error": str | None}


@dataclass(frozen=True, kw_only=True)
class IntegrationFailedEvent(DomainEvent):
    type: ClassVar[str] = "integration.failed"
    service: str
    category: str
    message: str
    status: int | None = None
    provider_code: str | None = None


@dataclass(frozen=True, kw_only=True)
class DataSyncedEvent(DomainEvent):
    type: ClassVar[str] = "data.synced"
    service: str
    job_id: str
    stream: str
    created: int = 0
    updated: int = 0
    deleted: int = 0
    pushed: int = 0
    conflicts: int = 0
    duration: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RateLimitExceededEvent(DomainEvent):
    type: ClassVar[str] = "rate_limit.exceeded"
    service: str
    window: str
    retry_after: float
    source: str = "provider"   # "provider" (the provider said so) or "limiter" (our own window is spent)


@dataclass(frozen=True, kw_only=True)
class AppStatusChangedEvent(DomainEvent):
    """Not in the seed's list: the dashboard's feed of every status move."""

    type: ClassVar[str] = "app.status_changed"
    service: str
    old_status: str
    new_status: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class AppConfiguredEvent(DomainEvent):
    type: ClassVar[str] = "app.configured"
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AppSharedEvent(DomainEvent):
    type: ClassVar[str] = "app.shared"
    with_user: str
    shared: bool = True


@dataclass(frozen=True, kw_only=True)
class SyncJobChangedEvent(DomainEvent):
    """A sync job was created, started, paused, resumed, configured, cancelled, failed, stalled or deleted."""

    type: ClassVar[str] = "sync.job_changed"
    job_id: str
    stream: str
    state: str
    change: str


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.type: cls
    for cls in (AppConnectedEvent, AppDisconnectedEvent, IntegrationFailedEvent, DataSyncedEvent,
                RateLimitExceededEvent, AppStatusChangedEvent, AppConfiguredEvent, AppSharedEvent,
                SyncJobChangedEvent)
}
