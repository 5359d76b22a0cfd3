"""The domain model's rules, without any I/O."""

from __future__ import annotations

import pytest

from domain import (AccessDenied, ApiCredential, ApiKey, AppConnectedEvent, AppDisconnectedEvent,
                    AppStatusChangedEvent, CheckInterval, ConnectedApp, ConnectionStatus, ConnectionTimeout,
                    HealthCheckResult, IntegrationError, IntegrationFailedEvent, IntegrationId,
                    InvalidConfiguration, InvalidStateTransition, RateLimit, RateLimitExceededEvent, RetryPolicy,
                    SyncFrequency)

KEY = ApiKey("ghp_" + "a" * 36)


def connected(now: float = 0.0) -> ConnectedApp:
    app = ConnectedApp.initiate(IntegrationId.generate(), "alice", "github", now=now)
    app.set_credentials(ApiCredential.from_api_key(KEY), now=now)
    app.establish(now=now)
    app.pull_events()
    return app


def fail(category: IntegrationError, at: float = 1.0) -> HealthCheckResult:
    return HealthCheckResult(ok=False, latency=0.1, checked_at=at, category=category, message="boom")


# ---- lifecycle -----------------------------------------------------------------------------------------------
def test_lifecycle_initiate_set_credentials_establish_records_connected_event():
    app = ConnectedApp.initiate(IntegrationId.generate(), "alice", "github", now=0.0)
    assert app.status is ConnectionStatus.PENDING
    app.set_credentials(ApiCredential.from_api_key(KEY), now=0.0)
    app.establish(now=2.0)
    events = app.pull_events()
    assert app.status is ConnectionStatus.CONNECTED and app.connected_at == 2.0
    assert [type(e) for e in events] == [AppStatusChangedEvent, AppConnectedEvent]
    assert events[1].service == "github" and events[1].user == "alice"
    assert app.pull_events() == []


def test_establish_without_credentials_is_refused():
    app = ConnectedApp.initiate(IntegrationId.generate(), "alice", "github", now=0.0)
    with pytest.raises(InvalidStateTransition, match="without credentials"):
        app.establish(now=1.0)


def test_establish_twice_is_refused():
    app = connected()
    with pytest.raises(InvalidStateTransition, match="connected"):
        app.establish(now=1.0)


def test_disconnect_is_terminal_and_drops_the_credential():
    app = connected()
    app.disconnect(now=5.0)
    assert app.status is ConnectionStatus.DISCONNECTED and app.credential is None
    assert isinstance(app.pull_events()[-1], AppDisconnectedEvent)
    for action in (lambda: app.disconnect(now=6.0), lambda: app.establish(now=6.0),
                   lambda: app.set_credentials(ApiCredential.from_api_key(KEY), now=6.0),
                   lambda: app.share_with("bob", now=6.0),
                   lambda: app.record_health(HealthCheckResult(ok=True, latency=0.1, checked_at=6.0))):
        with pytest.raises(InvalidStateTransition):
            action()


@pytest.mark.parametrize("category,status", [
    (IntegrationError.AUTHENTICATION_FAILED, ConnectionStatus.UNAUTHORIZED),
    (IntegrationError.RATE_LIMIT_EXCEEDED, ConnectionStatus.RATE_LIMITED),
    (IntegrationError.SERVICE_UNAVAILABLE, ConnectionStatus.ERROR),
    (IntegrationError.NETWORK_ERROR, ConnectionStatus.ERROR),
    (IntegrationError.INVALID_CONFIGURATION, ConnectionStatus.ERROR),
])
def test_health_failures_move_status_and_raise_one_event_per_episode(category, status):
    app = connected()
    app.record_health(fail(category, 1.0))
    app.record_health(fail(category, 2.0))
    events = app.pull_events()
    assert app.status is status
    assert app.integration.consecutive_failures == 2
    failures = [e for e in events if isinstance(e, (IntegrationFailedEvent, RateLimitExceededEvent))]
    assert len(failures) == 1, "repeating the same failure must not flood the event log"
    changes = [e for e in events if isinstance(e, AppStatusChangedEvent)]
    assert [(c.old_status, c.new_status) for c in changes] == [("connected", status.value)]
    app.record_health(HealthCheckResult(ok=True, latency=0.05, checked_at=3.0))
    assert app.status is ConnectionStatus.CONNECTED and app.integration.consecutive_failures == 0


def test_health_on_pending_app_is_refused():
    app = ConnectedApp.initiate(IntegrationId.generate(), "alice", "github", now=0.0)
    with pytest.raises(InvalidStateTransition):
        app.record_health(HealthCheckResult(ok=True, latency=0.1, checked_at=1.0))


def test_successful_call_revives_rate_limited_app_but_not_unauthorized():
    app = connected()
    app.record_failure(IntegrationError.RATE_LIMIT_EXCEEDED, "slow down", now=1.0, retry_after=30)
    app.record_success(now=2.0)
    assert app.status is ConnectionStatus.CONNECTED
    app.record_failure(IntegrationError.AUTHENTICATION_FAILED, "revoked", now=3.0)
    app.record_success(now=4.0)
    assert app.status is ConnectionStatus.UNAUTHORIZED


def test_limiter_exhaustion_is_an_event_without_a_status_change():
    app = connected()
    app.record_limiter_exhausted("hour", 120.0, now=1.0)
    (event,) = app.pull_events()
    assert isinstance(event, RateLimitExceededEvent) and event.source == "limiter" and event.window == "hour"
    assert app.status is ConnectionStatus.CONNECTED


# ---- ownership and sharing -----------------------------------------------------------------------------------
def test_ownership_and_sharing():
    app = connected()
    assert app.belongs_to_user("alice") and not app.belongs_to_user("bob")
    assert not app.can_be_used_by("bob") and app.can_be_used_by("bob", admin=True)
    assert app.share_with("bob", now=1.0) is True
    assert app.share_with("bob", now=1.0) is False
    assert app.is_shared_with("bob") and app.can_be_used_by("bob")
    with pytest.raises(AccessDenied):
        app.ensure_manageable_by("bob")
    assert app.unshare("bob", now=2.0) is True and not app.can_be_used_by("bob")
    assert app.share_with("alice", now=3.0) is False, "sharing with the owner is a no-op"
    with pytest.raises(InvalidConfiguration):
        app.share_with("bad user name!", now=3.0)


# ---- value objects -------------------------------------------------------------------------------------------
def test_rate_limit_validates_itself():
    RateLimit(per_minute=60, per_hour=1000, per_day=10000, burst=10)
    for bad in (dict(per_minute=0), dict(per_hour=-5), dict(burst=0), dict(per_minute=100, per_hour=50),
                dict(per_hour=10, per_day=5), dict(per_minute=5, burst=6), dict(per_minute=1.5),
                dict(per_day=True)):
        with pytest.raises(InvalidConfiguration):
            RateLimit(**bad)


def test_rate_limit_seed_spelling():
    rl = RateLimit.create(requests_per_minute=60, requests_per_hour=1000, requests_per_day=10000, burst_capacity=10)
    assert rl == RateLimit(60, 1000, 10000, 10)


def test_rate_limit_never_exceeds_the_provider():
    provider = RateLimit(per_hour=5000, burst=100)
    assert RateLimit(per_minute=60, per_hour=1000).merged_over(provider) == RateLimit(60, 1000, None, 60)
    with pytest.raises(InvalidConfiguration, match="exceeds the provider"):
        RateLimit(per_hour=6000).merged_over(provider)
    assert RateLimit(per_minute=10).excess_over(RateLimit(per_minute=5)) == ["per_minute"]
    assert not RateLimit().within(provider), "an unlimited window is above a published one"


def test_timeouts_and_intervals_are_bounded():
    assert ConnectionTimeout(1).seconds == 1 and ConnectionTimeout(120).seconds == 120
    for bad in (0.5, 121, -1, "30", True):
        with pytest.raises(InvalidConfiguration, match="between 1 and 120"):
            ConnectionTimeout(bad)
    with pytest.raises(InvalidConfiguration):
        CheckInterval(5)


def test_api_key_never_shows_itself():
    key = ApiKey("sk_live_0123456789abcdef")
    assert "0123456789" not in repr(key) and "0123456789" not in str(key)
    assert key.hint == "…cdef"
    assert ApiKey("short").hint == "…"
    for bad in ("", "   ", "has space", "x" * 5000, "tab\tkey"):
        with pytest.raises(InvalidConfiguration):
            ApiKey(bad)
    cred = ApiCredential.from_api_key(key)
    assert "0123456789" not in repr(cred) and "0123456789" not in str(cred.describe())


def test_integration_id():
    i = IntegrationId.generate()
    assert IntegrationId(str(i)) == i
    for bad in ("", "int_xyz", "../etc/passwd", "int_" + "0" * 31):
        with pytest.raises(InvalidConfiguration):
            IntegrationId(bad)


def test_retry_policy_seed_defaults():
    p = RetryPolicy.exponential_backoff()
    assert (p.max_retries, p.base_delay, p.max_delay, p.backoff_multiplier) == (3, 1.0, 30.0, 2.0)
    assert [p.delay(n) for n in (1, 2, 3, 4, 10)] == [1.0, 2.0, 4.0, 8.0, 30.0]
    assert p.max_attempts == 4


def test_error_categories_retryable():
    assert {c.value for c in IntegrationError if c.retryable} == {"rate_limit", "service_down", "network_error"}


def test_sync_frequency():
    assert SyncFrequency.hourly().period_seconds() == 3600
    assert SyncFrequency.every_minutes(15).period_seconds() == 900
    assert SyncFrequency.realtime().period_seconds() is None
    with pytest.raises(InvalidConfiguration):
        SyncFrequency.every_minutes(0)
    with pytest.raises(InvalidConfiguration):
        SyncFrequency.from_cron("* * *")


def test_names_and_users_refuse_control_characters():
    for bad in ("", "   ", "a\nb", "ok\n", "x" * 81):
        with pytest.raises(InvalidConfiguration):
            ConnectedApp.initiate(IntegrationId.generate(), "alice", "github", now=0.0, name=bad)
    assert ConnectedApp.initiate(IntegrationId.generate(), "alice", "slack", now=0.0, name="Slack (#ops)").name
    for bad in ("alice\n", "a b", "", "x" * 65):
        with pytest.raises(InvalidConfiguration):
            ConnectedApp.initiate(IntegrationId.generate(), bad, "github", now=0.0)
    with pytest.raises(InvalidConfiguration):
        IntegrationId(str(IntegrationId.generate()) + "\n")


def test_a_check_held_back_by_our_limits_cannot_move_the_status():
    app = connected()
    held = HealthCheckResult(ok=False, latency=0.0, checked_at=1.0, category=IntegrationError.RATE_LIMIT_EXCEEDED,
                             message="check not sent", sent=False)
    with pytest.raises(InvalidStateTransition):
        app.record_health(held)
    assert app.status is ConnectionStatus.CONNECTED and app.pull_events() == []
