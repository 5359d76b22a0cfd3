"""Entities: the ConnectedApp aggregate with its Integration settings and ApiCredential.

Lifecycle of a ConnectedApp (every other move raises InvalidStateTransition)::

    initiate ──> PENDING ──set_credentials/authorize──> PENDING(with credential) ──establish──> CONNECTED
                    │                                                                         │  ▲
                    └──────────────────────── disconnect ──> DISCONNECTED <── disconnect ──────┤  │ healthy check
                                                             (terminal)                       ▼  │
                                                                      ERROR / RATE_LIMITED / UNAUTHORIZED

Health results and call outcomes move an established app between CONNECTED, ERROR, RATE_LIMITED and
UNAUTHORIZED. The aggregate records events (``pull_events``) that the unit of work commits with the state.

>>> app = ConnectedApp.initiate(IntegrationId.generate(), "alice", "github", now=0.0)
>>> app.set_credentials(ApiCredential.from_api_key(ApiKey("ghp_" + "x" * 36)), now=0.0)
>>> app.establish(now=1.0); app.status
<ConnectionStatus.CONNECTED: 'connected'>
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from domain.errors import (AccessDenied, IntegrationError, InvalidConfiguration,
                           InvalidStateTransition)
from domain.events import (AppConfiguredEvent, AppConnectedEvent, AppDisconnectedEvent, AppSharedEvent,
                           AppStatusChangedEvent, DomainEvent, IntegrationFailedEvent,
                           RateLimitExceededEvent)
from domain.values import (ApiKey, AuthMode, CheckInterval, ConnectionStatus, ConnectionTimeout,
                           IntegrationId, RateLimit, redact_hint)

_NAME_RE = re.compile(r"^(?=.*\S)[^\x00-\x1f\x7f]{1,80}$")
_USER_RE = re.compile(r"^[A-Za-z0-9_.@:-]{1,64}$")


def validate_user(user: str, field_name: str = "user") -> str:
    if not isinstance(user, str) or not _USER_RE.fullmatch(user):
        raise InvalidConfiguration(f"{field_name} must be 1-64 characters of letters, digits and _.@:-",
                                   field=field_name)
    return user


@dataclass(frozen=True, slots=True)
class ApiCredential:
    """What authenticates an app to its provider. Secret fields never leave through repr or ``describe``.

    ``secrets`` holds the sensitive values (api_key, or access_token/refresh_token); ``attributes`` the
    non-secret ones (token_type, scopes, expires_at, account identity). The vault encrypts ``secrets``.
    """

    mode: AuthMode
    secrets: dict[str, str] = field(repr=False)
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api_key(cls, key: ApiKey, **attributes: Any) -> ApiCredential:
        return cls(AuthMode.API_KEY, {"api_key": key.reveal()}, dict(attributes))

    @classmethod
    def from_tokens(cls, access_token: str, refresh_token: str | None = None, *,
                    expires_at: float | None = None, scopes: list[str] | None = None,
                    token_type: str = "bearer", **attributes: Any) -> ApiCredential:
        secrets = {"access_token": ApiKey(access_token).reveal()}
        if refresh_token:
            secrets["refresh_token"] = ApiKey(refresh_token).reveal()
        attrs = {"expires_at": expires_at, "scopes": list(scopes or []), "token_type": token_type, **attributes}
        return cls(AuthMode.OAUTH2, secrets, attrs)

    @property
    def bearer(self) -> str:
        """The value sent to the provider (API key or access token)."""
        return self.secrets.get("access_token") or self.secrets["api_key"]

    @property
    def hint(self) -> str:
        return redact_hint(self.bearer)

    def with_attributes(self, **attrs: Any) -> ApiCredential:
        return replace(self, attributes={**self.attributes, **attrs})

    def describe(self) -> dict[str, Any]:
        """A safe description: the mode, a hint of the secret and the non-secret attributes."""
        return {"mode": self.mode.value, "hint": self.hint, **self.attributes}


@dataclass(slots=True)
class Integration:
    """The active configuration and running state of an app's integration with its service."""

    base_url: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)
    timeout: ConnectionTimeout = field(default_factory=ConnectionTimeout)
    check_interval: CheckInterval = field(default_factory=CheckInterval)
    scopes: tuple[str, ...] = ()
    last_check_at: float | None = None
    last_latency: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


@dataclass(frozen=True, slots=True)
class HealthCheckResult:
    """One health check's outcome: ok, or a classified failure with a safe message.

    ``sent`` is False when our own limits held the check back and the provider was never asked: such a result
    says nothing about the connection and must not move the app's status.
    """

    ok: bool
    latency: float
    checked_at: float
    category: IntegrationError | None = None
    message: str = ""
    status: int | None = None
    provider_code: str | None = None
    retry_after: float | None = None
    sent: bool = True

    @property
    def outcome(self) -> str:
        return "ok" if self.ok else (self.category.value if self.category else "error")


_FAILED_STATUS = {
    IntegrationError.AUTHENTICATION_FAILED: ConnectionStatus.UNAUTHORIZED,
    IntegrationError.RATE_LIMIT_EXCEEDED: ConnectionStatus.RATE_LIMITED,
    IntegrationError.SERVICE_UNAVAILABLE: ConnectionStatus.ERROR,
    IntegrationError.INVALID_CONFIGURATION: ConnectionStatus.ERROR,
    IntegrationError.NETWORK_ERROR: ConnectionStatus.ERROR,
}
_LIVE = (ConnectionStatus.CONNECTED, ConnectionStatus.ERROR, ConnectionStatus.RATE_LIMITED,
         ConnectionStatus.UNAUTHORIZED)


@dataclass(eq=False)
class ConnectedApp:
    """A user's connection to one external service: the aggregate root."""

    id: IntegrationId
    owner: str
    service: str
    name: str
    status: ConnectionStatus = ConnectionStatus.PENDING
    integration: Integration = field(default_factory=Integration)
    credential: ApiCredential | None = field(default=None, repr=False)
    shared_with: set[str] = field(default_factory=set)
    created_at: float = 0.0
    updated_at: float = 0.0
    connected_at: float | None = None
    status_reason: str = ""
    version: int = 0
    _events: list[DomainEvent] = field(default_factory=list, repr=False)

    # ---- creation --------------------------------------------------------------------------------------
    @classmethod
    def initiate(cls, app_id: IntegrationId, owner: str, service: str, *, now: float, name: str | None = None,
                 integration: Integration | None = None) -> ConnectedApp:
        validate_user(owner, "owner")
        name = name if name is not None else service
        if not _NAME_RE.fullmatch(name):
            raise InvalidConfiguration("app name must be 1-80 printable characters, not only spaces",
                                       field="name")
        return cls(id=app_id, owner=owner, service=service, name=name,
                   integration=integration or Integration(), created_at=now, updated_at=now)

    # ---- lifecycle ---------------------------------------------------------------------------------------
    def set_credentials(self, credential: ApiCredential, *, now: float) -> None:
        """Attach (or replace) the credential. A replaced credential on an established app revives it."""
        self._require_not_disconnected("set credentials on")
        self.credential = credential
        self.updated_at = now

    def authorize(self, credential: ApiCredential, *, now: float) -> None:
        """The seed's OAuth step: the authorization grant has produced tokens."""
        if credential.mode is not AuthMode.OAUTH2:
            raise InvalidConfiguration("authorize takes an OAuth credential", field="credential")
        self.set_credentials(credential, now=now)

    def establish(self, *, now: float) -> None:
        if self.status is not ConnectionStatus.PENDING:
            raise InvalidStateTransition(f"cannot establish an app that is {self.status.value}")
        if self.credential is None:
            raise InvalidStateTransition("cannot establish an app without credentials")
        self.connected_at = now
        self._move(ConnectionStatus.CONNECTED, now, "connection established")
        self._record(AppConnectedEvent, now, service=self.service, name=self.name,
                     auth_mode=self.credential.mode.value)

    def disconnect(self, *, now: float, reason: str = "user request",
                   revocation: dict[str, Any] | None = None) -> None:
        """The credential is dropped whatever ``revocation`` (the provider's answer to revoking it) says."""
        self._require_not_disconnected("disconnect")
        self.credential = None
        self._move(ConnectionStatus.DISCONNECTED, now, reason)
        self._record(AppDisconnectedEvent, now, service=self.service, reason=reason, revocation=revocation)

    # ---- health and call outcomes -----------------------------------------------------------------------
    def record_health(self, result: HealthCheckResult) -> None:
        """Apply a health check's result: status moves, failure events on the way into trouble."""
        if self.status not in _LIVE:
            raise InvalidStateTransition(f"cannot record a health check on an app that is {self.status.value}")
        if not result.sent:
            raise InvalidStateTransition("a check our own limits held back says nothing about the connection")
        integ = self.integration
        integ.last_check_at = result.checked_at
        integ.last_latency = result.latency
        if result.ok:
            integ.consecutive_failures = 0
            integ.last_error = None
            self._move(ConnectionStatus.CONNECTED, result.checked_at, "health check passed")
            return
        integ.consecutive_failures += 1
        integ.last_error = result.message
        self.record_failure(result.category or IntegrationError.SERVICE_UNAVAILABLE, result.message,
                            now=result.checked_at, status=result.status, provider_code=result.provider_code,
                            retry_after=result.retry_after)

    def record_failure(self, category: IntegrationError, message: str, *, now: float, status: int | None = None,
                       provider_code: str | None = None, retry_after: float | None = None,
                       window: str = "provider") -> None:
        """A call or check failed: move to the matching status; raise events only on the way into it."""
        if self.status not in _LIVE:
            return
        target = _FAILED_STATUS[category]
        entering = self.status is not target
        self._move(target, now, message)
        if not entering:
            return
        if category is IntegrationError.RATE_LIMIT_EXCEEDED:
            self._record(RateLimitExceededEvent, now, service=self.service, window=window,
                         retry_after=float(retry_after or 0.0), source="provider")
        else:
            self._record(IntegrationFailedEvent, now, service=self.service, category=category.value,
                         message=message, status=status, provider_code=provider_code)

    def record_success(self, *, now: float) -> None:
        """A provider call succeeded: an app held back by rate limiting or an outage is connected again."""
        if self.status in (ConnectionStatus.RATE_LIMITED, ConnectionStatus.ERROR):
            self.integration.consecutive_failures = 0
            self._move(ConnectionStatus.CONNECTED, now, "provider call succeeded")

    def record_limiter_exhausted(self, window: str, retry_after: float, *, now: float) -> None:
        """Our own window (not the provider) ran dry: the event tells the platform, the status is untouched."""
        self._record(RateLimitExceededEvent, now, service=self.service, window=window,
                     retry_after=float(retry_after), source="limiter")

    # ---- configuration ------------------------------------------------------------------------------------
    def configure(self, *, now: float, provider_limit: RateLimit, rate_limit: RateLimit | None = None,
                  timeout: ConnectionTimeout | None = None, check_interval: CheckInterval | None = None,
                  name: str | None = None) -> dict[str, Any]:
        """Change settings; a rate limit may narrow the provider's published limit, never widen it."""
        self._require_not_disconnected("configure")
        changes: dict[str, Any] = {}
        if rate_limit is not None:
            merged = rate_limit.merged_over(provider_limit)
            if merged != self.integration.rate_limit:
                self.integration.rate_limit = merged
                changes["rate_limit"] = merged.as_dict()
        if timeout is not None and timeout != self.integration.timeout:
            self.integration.timeout = timeout
            changes["timeout"] = timeout.seconds
        if check_interval is not None and check_interval != self.integration.check_interval:
            self.integration.check_interval = check_interval
            changes["check_interval"] = check_interval.seconds
        if name is not None and name != self.name:
            if not _NAME_RE.fullmatch(name):
                raise InvalidConfiguration("app name must be 1-80 printable characters, not only spaces",
                                           field="name")
            self.name = name
            changes["name"] = name
        if changes:
            self.updated_at = now
            self._record(AppConfiguredEvent, now, changes=changes)
        return changes

    # ---- ownership and sharing ---------------------------------------------------------------------------
    def belongs_to_user(self, user: str) -> bool:
        return self.owner == user

    def is_shared_with(self, user: str) -> bool:
        return user in self.shared_with

    def can_be_used_by(self, user: str, *, admin: bool = False) -> bool:
        return admin or self.belongs_to_user(user) or self.is_shared_with(user)

    def ensure_manageable_by(self, user: str, *, admin: bool = False) -> None:
        """Only the owner (or an admin) may share, reconfigure or disconnect; sharing grants use, not control."""
        if not (admin or self.belongs_to_user(user)):
            raise AccessDenied(f"only the owner of app {self.id} can do that")

    def share_with(self, user: str, *, now: float) -> bool:
        validate_user(user)
        self._require_not_disconnected("share")
        if user == self.owner or user in self.shared_with:
            return False
        self.shared_with.add(user)
        self.updated_at = now
        self._record(AppSharedEvent, now, with_user=user, shared=True)
        return True

    def unshare(self, user: str, *, now: float) -> bool:
        if user not in self.shared_with:
            return False
        self.shared_with.discard(user)
        self.updated_at = now
        self._record(AppSharedEvent, now, with_user=user, shared=False)
        return True

    # ---- events ------------------------------------------------------------------------------------------
    def pull_events(self) -> list[DomainEvent]:
        events, self._events = self._events, []
        return events

    @property
    def pending_events(self) -> tuple[DomainEvent, ...]:
        return tuple(self._events)

    # ---- internals ---------------------------------------------------------------------------------------
    def _move(self, target: ConnectionStatus, now: float, reason: str) -> None:
        old = self.status
        self.status_reason = reason
        self.updated_at = now
        if old is target:
            return
        self.status = target
        self._record(AppStatusChangedEvent, now, service=self.service, old_status=old.value,
                     new_status=target.value, reason=reason)

    def _record(self, cls: type[DomainEvent], now: float, **payload: Any) -> None:
        self._events.append(cls(app_id=str(self.id), user=self.owner, occurred_at=now, **payload))

    def _require_not_disconnected(self, action: str) -> None:
        if self.status is ConnectionStatus.DISCONNECTED:
            raise InvalidStateTransition(f"cannot {action} an app that is disconnected")
