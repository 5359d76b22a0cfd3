"""The one checked table from our exceptions to JSON-RPC error codes (codes documented in integd.api).

Order matters: the first matching class wins, so subclasses come before their bases. Unmapped exceptions are
internal errors (-32603) whose text never reaches the client (it may carry a secret); the RPC layer logs them
with an error id.
"""

from __future__ import annotations

from domain import (AccessDenied, DomainException, IntegrationError, IntegrationFailure, InvalidConfiguration,
                    InvalidStateTransition, NotFound, RateLimitExceededException, UsageLimitExceededException)
from domain.sync import VersionConflict
from integd import api
from integd.oauth_errors import OAUTH_ERRORS
from integd.rpc.errors import RpcError


class NotImplementedService(DomainException):
    """The catalogue knows the service, but no connector exists for it yet."""


class Unavailable(DomainException):
    """The daemon is shutting down, or a dependency it needs is not there."""


class SinkNotFound(DomainException):
    """No event sink of that name is configured (integd.sinks)."""


class ReplayRefused(DomainException):
    """A replay may only move a sink's cursor back; moving it forward would skip events (integd.sinks)."""


def _failure(e: IntegrationFailure) -> RpcError:
    code = api.AUTH_FAILED if e.category is IntegrationError.AUTHENTICATION_FAILED else api.INTEGRATION_FAILED
    data = {"kind": "auth_failed" if code == api.AUTH_FAILED else "integration_failed",
            "category": e.category.value, "status": e.status, "provider_code": e.provider_code}
    if e.retry_after is not None:
        data["retry_after"] = round(e.retry_after, 3)
    return RpcError(code, str(e), data)


def _rate(e: RateLimitExceededException) -> RpcError:
    return RpcError(api.RATE_LIMITED, str(e), {"kind": "rate_limited", "retry_after": round(e.retry_after, 3),
                                               "window": e.window})


def _usage(e: UsageLimitExceededException) -> RpcError:
    return RpcError(api.USAGE_LIMIT, str(e), {"kind": "usage_limit", "retry_after": round(e.retry_after, 3),
                                              "plan": e.plan, "daily_limit": e.daily_limit})


def _config(e: InvalidConfiguration) -> RpcError:
    return RpcError(api.INVALID_CONFIG, str(e), {"kind": "invalid_config", "field": e.field})


def _version(e: VersionConflict) -> RpcError:
    return RpcError(-32025, str(e), {"kind": "version_conflict", "current_version": e.current})


_TABLE: list[tuple[type[BaseException], object]] = [
    (VersionConflict, _version),
    (IntegrationFailure, _failure),
    (RateLimitExceededException, _rate),
    (UsageLimitExceededException, _usage),
    (InvalidConfiguration, _config),
    (NotFound, (api.NOT_FOUND, "not_found")),
    (AccessDenied, (api.ACCESS_DENIED, "access_denied")),
    (PermissionError, (api.ACCESS_DENIED, "access_denied")),
    (InvalidStateTransition, (api.INVALID_STATE, "invalid_state")),
    (NotImplementedService, (api.NOT_IMPLEMENTED, "not_implemented")),
    (Unavailable, (api.UNAVAILABLE, "unavailable")),
    (SinkNotFound, (api.SINK_NOT_FOUND, "sink_not_found")),
    (ReplayRefused, (api.REPLAY_REFUSED, "replay_refused")),
]


# OAuth flow and client errors (integd.oauth_errors): -32015..-32023
_TABLE += [(cls, (code, kind)) for cls, code, kind in OAUTH_ERRORS]


def map_error(exc: BaseException) -> RpcError | None:
    """ErrorMapper for the dispatcher: our exception -> RpcError, or None for an internal error."""
    for cls, target in _TABLE:
        if isinstance(exc, cls):
            if callable(target):
                return target(exc)
            code, kind = target
            return RpcError(code, str(exc), {"kind": kind})
    return None
