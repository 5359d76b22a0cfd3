"""The domain's errors.

Hierarchy (every layer above translates its own failures into one of these; the daemon maps each class to a
stable JSON-RPC code in one table, ``integd.errors``)::

    DomainException                      a business rule said no
    ├── InvalidStateTransition           e.g. establishing a disconnected app
    ├── InvalidConfiguration             a value object refused its input (rate limit, timeout, name, ...)
    ├── AccessDenied                     the caller neither owns nor shares the app
    ├── NotFound                         no such app (also used instead of AccessDenied to hide existence)
    ├── RateLimitExceededException       our limiter holds the call back; carries retry_after and the window
    ├── UsageLimitExceededException      the user's fair-use plan is spent for today; carries retry_after
    └── IntegrationFailure               the provider (or the way to it) failed; carries an IntegrationError
        category, the provider's status and error code, and retry_after when the provider said so

:class:`IntegrationError` is the seed's classification; ``retryable`` says which categories can succeed if
tried again (only those are retried).
"""

from __future__ import annotations

from enum import StrEnum


class IntegrationError(StrEnum):
    AUTHENTICATION_FAILED = "auth_failed"
    RATE_LIMIT_EXCEEDED = "rate_limit"
    SERVICE_UNAVAILABLE = "service_down"
    INVALID_CONFIGURATION = "config_error"
    NETWORK_ERROR = "network_error"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        IntegrationError.RATE_LIMIT_EXCEEDED,
        IntegrationError.SERVICE_UNAVAILABLE,
        IntegrationError.NETWORK_ERROR,
    }
)


class DomainException(Exception):
    """A business rule refused the operation. The message is safe to show (it never holds a secret)."""


class InvalidStateTransition(DomainException):
    pass


class InvalidConfiguration(DomainException):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AccessDenied(DomainException):
    pass


class NotFound(DomainException):
    pass


class RateLimitExceededException(DomainException):
    def __init__(self, message: str, *, retry_after: float, window: str) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))
        self.window = window


class UsageLimitExceededException(DomainException):
    def __init__(self, message: str, *, retry_after: float, plan: str, daily_limit: int) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, float(retry_after))
        self.plan = plan
        self.daily_limit = daily_limit


class IntegrationFailure(DomainException):
    """A call to a provider failed, classified. ``message`` must already be free of secrets."""

    def __init__(
        self,
        category: IntegrationError,
        message: str,
        *,
        status: int | None = None,
        provider_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.category = category
        self.status = status
        self.provider_code = provider_code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.category.retryable

    def __repr__(self) -> str:
        return (
            f"IntegrationFailure({self.category.value!r}, {str(self)!r}, status={self.status}, "
            f"provider_code={self.provider_code!r}, retry_after={self.retry_after})"
        )
