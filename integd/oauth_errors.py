"""The OAuth feature's errors and their JSON-RPC codes (the table rows live in integd.errors).

    DomainException
     ├── ClientNotRegistered   -32021   no OAuth client registered for the service
     └── FlowError
          ├── FlowNotFound          -32015   no such flow for this user (someone else's looks the same)
          ├── FlowExpired           -32016   past its ten minutes (or the device code expired)
          ├── FlowStateMismatch     -32017   wrong/missing state, no code, a URL that is not the redirect URI
          ├── FlowDenied            -32018   access_denied at the provider
          ├── TokenEndpointFailed   -32019   the token endpoint answered 5xx, garbage, or not at all
          ├── FlowGrantRefused      -32020   invalid_grant on the code (expired, reused, verifier mismatch)
          ├── ClientRefused         -32022   invalid_client & co: the client registration is wrong
          └── FlowFinished          -32023   completed, failed or cancelled already
"""

from __future__ import annotations

from domain import DomainException


class ClientNotRegistered(DomainException):
    """No OAuth client is registered for the service (config or oauth.clients.set)."""


class FlowError(DomainException):
    """An OAuth connect flow could not go on; the message says why (never a secret)."""


class FlowNotFound(FlowError):
    pass


class FlowExpired(FlowError):
    pass


class FlowStateMismatch(FlowError):
    pass


class FlowDenied(FlowError):
    pass


class TokenEndpointFailed(FlowError):
    pass


class FlowGrantRefused(FlowError):
    pass


class ClientRefused(FlowError):
    pass


class FlowFinished(FlowError):
    pass


# (class, code, kind): integd.errors maps each to an RpcError; integd.api documents the codes
OAUTH_ERRORS: tuple[tuple[type[DomainException], int, str], ...] = (
    (FlowNotFound, -32015, "oauth_flow_not_found"),
    (FlowExpired, -32016, "oauth_flow_expired"),
    (FlowStateMismatch, -32017, "oauth_state_mismatch"),
    (FlowDenied, -32018, "oauth_access_denied"),
    (TokenEndpointFailed, -32019, "oauth_token_endpoint_failed"),
    (FlowGrantRefused, -32020, "oauth_grant_refused"),
    (ClientNotRegistered, -32021, "oauth_client_not_registered"),
    (ClientRefused, -32022, "oauth_client_refused"),
    (FlowFinished, -32023, "oauth_flow_finished"),
)
