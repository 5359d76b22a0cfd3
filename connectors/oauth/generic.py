"""Generic OAuth 2.0 services: a provider defined entirely by configuration, with a bearer-token connector.

``register_generic(GenericService(...))`` adds the service to the process-wide catalogue (``SERVICES``), the
connector table (``connectors.factory.CONNECTORS``) and the OAuth providers, so services.list, the factory
and the flows see it like a built-in one. A generic service may not shadow a built-in name; registering the
same name again replaces the earlier definition (a daemon reload, or tests with other settings), and
``unregister_generic`` removes it when the daemon that defined it stops.

The connector is deliberately plain: ``Authorization: Bearer <token>``; health = ``GET identity_endpoint``
answering 2xx. Classification: 401 and 403 AUTH_FAILED, 429 RATE_LIMIT_EXCEEDED (Retry-After honoured), 5xx
SERVICE_UNAVAILABLE; anything else is the caller's answer.

>>> svc = GenericService("acme", "Acme", ServiceCategory.DEVELOPMENT, "https://api.acme.example",
...                      "/me", OAuthProvider("acme", "https://acme.example/auth", "https://acme.example/token"))
>>> register_generic(svc).descriptor.auth_modes
(<AuthMode.OAUTH2: 'oauth2'>,)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import AccountIdentity, Connector, RateSignal, ServiceDescriptor
from connectors.catalogue import SERVICES
from connectors.http import parse_retry_after
from connectors.oauth import providers
from connectors.oauth.provider import OAuthProvider
from domain.errors import IntegrationError, IntegrationFailure, InvalidConfiguration
from domain.values import AuthMode, RateLimit, ServiceCategory

_ID_FIELDS = ("sub", "id", "user_id", "login", "email", "preferred_username")
_NAME_FIELDS = ("name", "display_name", "login", "preferred_username", "email", "sub", "id")
GENERIC: set[str] = set()      # names registered here (only these may be replaced)


@dataclass(frozen=True)
class GenericService:
    name: str
    display_name: str
    category: ServiceCategory
    api_base_url: str
    identity_endpoint: str
    provider: OAuthProvider
    rate_limit: RateLimit = RateLimit(per_minute=600, burst=20)   # nothing published: a cautious default


class GenericOAuthConnector(Connector):
    """Bearer-token connector for a configured OAuth service (subclassed per service by register_generic)."""

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.bearer}"}

    def rate_signal(self, status: int, headers: Mapping[str, str], body: Any) -> RateSignal:
        retry_after = parse_retry_after(headers.get("retry-after"), now=self.clock.time()) \
            if status in (429, 503) else None
        return RateSignal(retry_after=retry_after)

    def classify(self, status: int, headers: Mapping[str, str], body: Any) -> IntegrationFailure | None:
        if status in (401, 403):
            return self.failure(IntegrationError.AUTHENTICATION_FAILED, "the token was refused", status=status)
        if status == 429:
            retry_after = parse_retry_after(headers.get("retry-after"), now=self.clock.time()) or 60.0
            return self.failure(IntegrationError.RATE_LIMIT_EXCEEDED, "rate limited", status=status,
                                retry_after=retry_after)
        if status >= 500:
            return self.failure(IntegrationError.SERVICE_UNAVAILABLE, "server error", status=status)
        return None

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict):
            return AccountIdentity("unknown", self.name, {})
        account = next((str(body[k]) for k in _ID_FIELDS if body.get(k) not in (None, "")), "unknown")
        display = next((str(body[k]) for k in _NAME_FIELDS if body.get(k) not in (None, "")), account)
        return AccountIdentity(account, display[:120], {"fields": sorted(body)[:20]})


def register_generic(service: GenericService) -> type[GenericOAuthConnector]:
    """Make ``service`` a first-class catalogue entry with an OAuth provider and a connector."""
    from connectors.factory import CONNECTORS   # late: the factory imports every connector module

    if service.name in SERVICES and service.name not in GENERIC:
        raise InvalidConfiguration(f"oauth provider {service.name!r} would shadow the built-in service of that "
                                   "name; choose another name", field=f"oauth.providers.{service.name}")
    descriptor = ServiceDescriptor(service.name, service.display_name, service.category, (AuthMode.OAUTH2,),
                                   service.api_base_url, service.rate_limit, service.provider.default_scopes,
                                   service.identity_endpoint, service.provider.authorize_url, implemented=True)
    cls = type(f"Generic_{service.name}", (GenericOAuthConnector,), {"descriptor": descriptor,
                                                                     "__module__": __name__})
    GENERIC.add(service.name)
    SERVICES[service.name] = descriptor
    CONNECTORS[service.name] = cls
    providers()[service.name] = service.provider
    return cls


def unregister_generic(name: str) -> None:
    """Remove a generic service registered here (a daemon stopping); built-in services are never touched."""
    from connectors.factory import CONNECTORS

    if name not in GENERIC:
        return
    GENERIC.discard(name)
    SERVICES.pop(name, None)
    CONNECTORS.pop(name, None)
    providers().pop(name, None)
