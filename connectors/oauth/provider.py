"""A provider's OAuth 2.0 description: pure data, no I/O (each OAuth connector module exports ``OAUTH``).

URLs are the real provider defaults. Two transformations make one description serve emulators, enterprise
hosts and tenants:

- ``with_auth_base(base)`` re-roots every endpoint URL at ``base``: the scheme and host (and port) are
  replaced by ``base``'s, and ``base``'s path (without a trailing slash) is put in front of the endpoint's
  own path; the endpoint's query is kept. ``https://github.com/login/oauth/authorize`` re-rooted at
  ``http://127.0.0.1:4000`` is ``http://127.0.0.1:4000/login/oauth/authorize``; at
  ``https://ghe.example.com`` it is ``https://ghe.example.com/login/oauth/authorize`` (GitHub Enterprise
  Server). Endpoints on different hosts (Google's accounts.google.com and oauth2.googleapis.com) all land
  on the one base, which is what an emulator serving every endpoint needs.
- ``for_tenant(tenant)`` fills ``{tenant}`` in the URLs (Microsoft identity platform: ``common`` by
  default, or ``organizations``, ``consumers``, a tenant id or domain).

Errors: ``InvalidConfiguration`` (domain) naming the field, for a bad base URL or tenant.

>>> p = OAuthProvider("demo", "https://auth.example.com/authorize", "https://auth.example.com/token")
>>> p.with_auth_base("http://127.0.0.1:4000/x").token_url
'http://127.0.0.1:4000/x/token'
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from domain.errors import InvalidConfiguration

RevocationStyle = Literal["rfc7009", "github", "slack", "hubspot", "none"]
ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]
TokenResponseDialect = Literal["json", "form", "slack"]

_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")
_URL_FIELDS = ("authorize_url", "token_url", "device_authorization_url", "revocation_url")


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class OAuthProvider:
    """How one provider speaks OAuth 2.0.

    >>> GITHUB = OAuthProvider("github", "https://github.com/login/oauth/authorize",
    ...                        "https://github.com/login/oauth/access_token", token_response="form")
    >>> GITHUB.with_auth_base("http://127.0.0.1:4000").authorize_url
    'http://127.0.0.1:4000/login/oauth/authorize'
    """

    name: str
    authorize_url: str
    token_url: str
    device_authorization_url: str | None = None
    revocation_url: str | None = None
    revocation_style: RevocationStyle = "rfc7009"
    default_scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    extra_authorize_params: Mapping[str, str] = field(default_factory=dict)
    client_auth: ClientAuthMethod = "client_secret_basic"
    pkce: bool = True
    rotates_refresh_tokens: bool = False
    old_refresh_token_survives_rotation: bool = True
    token_response: TokenResponseDialect = "json"
    # the parameter name of the scope in the authorize URL (Slack: bot scopes in "scope", user ones elsewhere)
    scope_param: str = "scope"

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_authorize_params", _frozen(self.extra_authorize_params))
        object.__setattr__(self, "default_scopes", tuple(self.default_scopes))

    @property
    def supports_device_flow(self) -> bool:
        return self.device_authorization_url is not None

    @property
    def supports_revocation(self) -> bool:
        return self.revocation_style != "none" and self.revocation_url is not None

    def join_scopes(self, scopes: tuple[str, ...] | list[str]) -> str:
        return self.scope_separator.join(scopes)

    def with_auth_base(self, base: str) -> OAuthProvider:
        """Every endpoint re-rooted at ``base`` (module docstring). ``base`` must be absolute http(s)."""
        root = urllib.parse.urlsplit(base if isinstance(base, str) else "")
        if root.scheme not in ("http", "https") or not root.netloc or root.query or root.fragment \
                or root.username or root.password:
            raise InvalidConfiguration("auth_base_url must be an absolute http(s) URL without credentials, "
                                       "query or fragment", field="auth_base_url")
        prefix = root.path.rstrip("/")

        def reroot(url: str | None) -> str | None:
            if url is None:
                return None
            parts = urllib.parse.urlsplit(url)
            return urllib.parse.urlunsplit((root.scheme, root.netloc, prefix + parts.path, parts.query, ""))

        return replace(self, **{name: reroot(getattr(self, name)) for name in _URL_FIELDS})

    def for_tenant(self, tenant: str) -> OAuthProvider:
        """``{tenant}`` filled in every URL (Microsoft); a provider without the placeholder is unchanged."""
        if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
            raise InvalidConfiguration("tenant must be 1-100 letters, digits, dots or hyphens (common, "
                                       "organizations, consumers, a tenant id or domain)", field="tenant")
        changes = {name: getattr(self, name).replace("{tenant}", tenant)
                   for name in _URL_FIELDS if getattr(self, name) is not None}
        return replace(self, **changes)

    def revocation_endpoint(self, client_id: str) -> str | None:
        """The revocation URL with ``{client_id}`` filled (GitHub puts the client id in the path)."""
        if not self.supports_revocation or self.revocation_url is None:
            return None
        return self.revocation_url.replace("{client_id}", urllib.parse.quote(client_id, safe=""))
