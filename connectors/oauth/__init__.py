"""OAuth 2.0 for connectors: provider descriptions, the pure protocol, the HTTP client, the generic provider.

``OAUTH_PROVIDERS`` maps a service name to its :class:`OAuthProvider`. It is built from the connector
modules themselves (each OAuth connector's module exports ``OAUTH``), found through the connector table in
``connectors.factory``, so a provider is described once. It is computed on first use, because the connector
modules import ``connectors.oauth.provider`` and an eager build here would be an import cycle.

>>> oauth_provider("github").device_authorization_url
'https://github.com/login/device/code'
"""

from __future__ import annotations

import sys
from typing import Any

from connectors.oauth.provider import OAuthProvider
from domain.errors import InvalidConfiguration

__all__ = ["OAuthProvider", "OAUTH_PROVIDERS", "oauth_provider"]

_cache: dict[str, OAuthProvider] | None = None


def _build() -> dict[str, OAuthProvider]:
    from connectors.factory import CONNECTORS   # late: see the module docstring

    out: dict[str, OAuthProvider] = {}
    for name, cls in CONNECTORS.items():
        provider = getattr(sys.modules[cls.__module__], "OAUTH", None)
        if isinstance(provider, OAuthProvider):
            out[name] = provider
    return out


def providers() -> dict[str, OAuthProvider]:
    """Every built-in provider, by service name."""
    global _cache
    if _cache is None:
        _cache = _build()
    return _cache


def oauth_provider(service: str) -> OAuthProvider:
    """The built-in OAuth description of ``service``; InvalidConfiguration if it has none."""
    found = providers().get(service) if isinstance(service, str) else None
    if found is None:
        known = ", ".join(sorted(providers())) or "none"
        raise InvalidConfiguration(f"service {str(service)[:40]!r} has no built-in OAuth provider; known: {known}",
                                   field="service")
    return found


def __getattr__(name: str) -> Any:
    if name == "OAUTH_PROVIDERS":
        return providers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
