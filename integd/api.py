"""The JSON-RPC API's schema: one params model and one result model per method.

These models are the contract: the daemon validates every call's params with them, serialises every result
through them, and ``rpc.discover`` publishes them as an OpenRPC document. Clients (integctl, integtui) may import
this module; it imports nothing of the daemon's internals.

Error codes (``error.code`` in a JSON-RPC error; ``error.data.kind`` repeats the name)::

    -32001 not_found            no such app (or not visible to the caller)
    -32002 access_denied        visible, but the caller may not do that (e.g. only the owner may disconnect)
    -32003 invalid_state        an impossible lifecycle transition (e.g. configuring a disconnected app)
    -32004 invalid_config       a value the domain refused (data.field names it)
    -32005 rate_limited         our limiter or the provider holds the call back (data.retry_after, data.window)
    -32006 usage_limit          the user's daily fair-use plan is spent (data.retry_after, data.plan)
    -32007 integration_failed   the provider call failed (data.category, data.status, data.provider_code)
    -32008 auth_failed          the provider refused the credential (data.category = auth_failed)
    -32009 unavailable          the daemon is shutting down or the store is unavailable
    -32010 not_implemented      the service exists in the catalogue but has no connector yet
    -32011 sink_not_found       events.replay named no configured event sink
    -32012 replay_refused       events.replay would move a sink's cursor forward (skipping events)
    -32015 oauth_flow_not_found     no OAuth flow with that id for this user
    -32016 oauth_flow_expired       the flow's ten minutes (or the device code) ran out
    -32017 oauth_state_mismatch     the redirect's state/URL is not this flow's (stale, reused or tampered)
    -32018 oauth_access_denied      the person refused at the provider (error=access_denied)
    -32019 oauth_token_endpoint_failed  the token endpoint answered 5xx, garbage or nothing
    -32020 oauth_grant_refused      invalid_grant for the code (expired, used, verifier or redirect mismatch)
    -32021 oauth_client_not_registered  no [oauth.clients.<service>] nor oauth.clients.set for the service
    -32022 oauth_client_refused     the provider refused our client registration (invalid_client)
    -32023 oauth_flow_finished      the flow is already completed, failed or cancelled
    -32025 version_conflict     records.put/delete was based on a stale record version (data.current_version)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

NOT_FOUND = -32001
ACCESS_DENIED = -32002
INVALID_STATE = -32003
INVALID_CONFIG = -32004
RATE_LIMITED = -32005
USAGE_LIMIT = -32006
INTEGRATION_FAILED = -32007
AUTH_FAILED = -32008
UNAVAILABLE = -32009
NOT_IMPLEMENTED = -32010
SINK_NOT_FOUND = -32011
REPLAY_REFUSED = -32012

Status = Literal["connected", "disconnected", "error", "pending", "rate_limited", "unauthorized"]
AppIdStr = str


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class ActingParams(Params):
    as_user: str | None = Field(None, description="For a service principal: the domain user the call acts for.")


class AppRef(ActingParams):
    app_id: AppIdStr = Field(..., description="The app's IntegrationId (int_ + 32 hex digits).")


# ---- results ------------------------------------------------------------------------------------------------
class Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimitModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_minute: int | None = Field(None, ge=1)
    per_hour: int | None = Field(None, ge=1)
    per_day: int | None = Field(None, ge=1)
    burst: int | None = Field(None, ge=1)


class ServiceInfo(Result):
    name: str
    display_name: str
    category: str
    auth_modes: list[str]
    default_base_url: str
    rate_limit: RateLimitModel
    scopes: list[str]
    identity_endpoint: str
    docs_url: str
    implemented: bool


class HealthEntry(Result):
    checked_at: float
    ok: bool
    outcome: str
    latency: float
    message: str = ""
    status: int | None = None


class WindowUsageModel(Result):
    name: str
    limit: int
    used: int
    remaining: int
    resets_at: float


class AppSummary(Result):
    id: str
    name: str
    service: str
    category: str
    owner: str
    status: Status
    status_reason: str
    shared_with: list[str]
    created_at: float
    updated_at: float
    connected_at: float | None
    last_check_at: float | None
    last_latency: float | None
    next_check_at: float | None
    consecutive_failures: int
    rate_limit: RateLimitModel
    tightest_window: WindowUsageModel | None = None


class AppDetail(AppSummary):
    base_url: str
    timeout: float
    check_interval: float
    credential: dict[str, Any] | None = Field(None, description="Mode, redacted hint and non-secret attributes.")
    health: list[HealthEntry] = []
    last_error: str | None = None


class EventModel(Result):
    seq: int
    event_id: str
    type: str
    app_id: str
    user: str
    occurred_at: float
    payload: dict[str, Any]


class UsageResult(Result):
    app_id: str
    rate_limit: RateLimitModel
    windows: list[WindowUsageModel]
    provider: dict[str, Any] = Field(..., description="The provider's last rate-limit signal and blocked_until.")
    plan: dict[str, Any] | None = Field(None, description="The user's daily fair-use budget.")
    exhausted: list[dict[str, Any]] = Field([], description="Recent times a window ran dry.")


class RequestResult(Result):
    status: int
    headers: dict[str, str]
    body: Any
    latency: float
    attempts: int


class CheckResult(Result):
    app: AppSummary
    ok: bool
    outcome: str
    latency: float
    message: str = ""


class DisconnectResult(Result):
    app_id: str
    status: Status
    revocation: dict[str, Any] | None = Field(None, description="OAuth apps: {revoked: true|false|null (the "
                                              "provider has no revocation), error}; the credential is deleted "
                                              "regardless")


class DaemonStatus(Result):
    version: str
    pid: int
    uptime: float
    started_at: float
    principal: dict[str, Any]
    apps: int
    by_status: dict[str, int]
    in_flight: int
    socket: str
    state_dir: str
    last_event_seq: int


class KeyRotation(Result):
    new_key_id: str
    old_key_ids: list[str]
    reencrypted: int


# ---- params ---------------------------------------------------------------------------------------------------
class NoParams(Params):
    pass


class ServicesListParams(Params):
    category: str | None = None
    implemented: bool | None = None


class ConnectParams(ActingParams):
    service: str = Field(..., min_length=1, max_length=40)
    api_key: SecretStr = Field(..., description="API key or token; never echoed back.")
    name: str | None = Field(None, max_length=80)
    base_url: str | None = Field(None, max_length=2048, description="Override, e.g. GitHub Enterprise.")
    rate_limit: RateLimitModel | None = None
    timeout: float | None = None
    check_interval: float | None = None


class AppsListParams(ActingParams):
    service: str | None = None
    status: Status | None = None
    all_users: bool = Field(False, description="Admins only: every user's apps.")
    include_disconnected: bool = False


class ConfigureParams(AppRef):
    rate_limit: RateLimitModel | None = None
    timeout: float | None = None
    check_interval: float | None = None
    name: str | None = Field(None, max_length=80)


class AppRequestParams(AppRef):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = Field(..., min_length=1, max_length=4096)
    params: dict[str, str | int | float | bool | list[str]] | None = None
    json_body: Any = Field(None, alias="json")
    headers: dict[str, str] | None = None
    wait: bool = Field(False, description="Wait for rate-limit windows instead of failing fast.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)


class ShareParams(AppRef):
    user: str = Field(..., min_length=1, max_length=64)


class DisconnectParams(AppRef):
    reason: str = Field("user request", max_length=200)


class EventsListParams(ActingParams):
    after: int = Field(0, ge=0, description="Only events with a larger sequence number.")
    before: int | None = Field(None, ge=1, description="Only events with a smaller sequence number.")
    order: Literal["asc", "desc"] = Field("asc", description="desc: newest first (e.g. an app's latest events).")
    limit: int = Field(100, ge=1, le=1000)
    types: list[str] | None = None
    app_id: str | None = None


class SubscribeParams(ActingParams):
    types: list[str] | None = None
    app_id: str | None = None
    after: int | None = Field(None, ge=0, description="Replay committed events after this sequence first.")


class SubscribeResult(Result):
    subscription: str
    last_seq: int


class UnsubscribeParams(Params):
    subscription: str


class EventsPage(Result):
    events: list[EventModel]
    last_seq: int
