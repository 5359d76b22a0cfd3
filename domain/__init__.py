"""The Integration Domain's model: pure Python, no I/O. See DESIGN.md for the layers around it."""

from domain.clock import Clock, FakeClock, SystemClock
from domain.errors import (AccessDenied, DomainException, IntegrationError, IntegrationFailure,
                           InvalidConfiguration, InvalidStateTransition, NotFound, RateLimitExceededException,
                           UsageLimitExceededException)
from domain.events import (EVENT_TYPES, AppConfiguredEvent, AppConnectedEvent, AppDisconnectedEvent,
                           AppSharedEvent, AppStatusChangedEvent, DataSyncedEvent, DomainEvent,
                           IntegrationFailedEvent, RateLimitExceededEvent)
from domain.model import ApiCredential, ConnectedApp, HealthCheckResult, Integration, validate_user
from domain.values import (ApiKey, AuthMode, CheckInterval, ConflictResolution, ConnectionStatus,
                           ConnectionTimeout, FrequencyKind, IntegrationId, RateLimit, RetryPolicy,
                           ServiceCategory, SyncDirection, SyncFrequency)
from domain.sync import (CronSchedule, Resolution, Side, SyncCounts, SyncJob, SyncState, next_run_due,
                         resolve_conflict)

__all__ = [n for n in dir() if not n.startswith("_")]
