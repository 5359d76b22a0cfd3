"""Which OAuth client the daemon is at each provider: registrations from the config and from ``oauth.clients.set``.

Resolution for a service (``ClientRegistry.resolve``): a run-time registration (oauth_clients table, secret in
the vault) wins over ``[oauth.clients.<service>]``; the config's secret comes from a systemd credential
(``client_secret_credential`` in ``$CREDENTIALS_DIRECTORY``) or a file (``client_secret_file``), read when used
so a rotated file needs no restart. The provider is the built-in one (``connectors.oauth``) or a generic one
(``[oauth.providers.<name>]``), re-rooted at ``auth_base_url`` and with ``{tenant}`` filled (default common).

Errors: ``ClientNotRegistered`` (no registration for the service), ``InvalidConfiguration`` (unreadable secret
file, bad tenant or base URL). Messages name the service and the file, never a secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.oauth import oauth_provider
from connectors.oauth.generic import GenericService, register_generic, unregister_generic
from connectors.oauth.protocol import ClientCredentials
from connectors.oauth.provider import OAuthProvider
from domain import InvalidConfiguration, RateLimit, ServiceCategory
from domain.values import redact_hint
from integd.config import Config, OAuthClientConfig, OAuthProviderConfig
from integd.oauth_errors import ClientNotRegistered
from integd.oauth_store import OAuthStore

DEFAULT_TENANT = "common"


@dataclass(frozen=True)
class ResolvedClient:
    service: str
    provider: OAuthProvider
    credentials: ClientCredentials
    redirect_uri: str


def _read_secret(path: Path, service: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidConfiguration(f"oauth.clients.{service}: cannot read the client secret file {path} "
                                   f"({exc.strerror or type(exc).__name__})", field="client_secret_file") from None
    if not text:
        raise InvalidConfiguration(f"oauth.clients.{service}: the client secret file {path} is empty",
                                   field="client_secret_file")
    return text


def generic_provider(name: str, conf: OAuthProviderConfig) -> GenericService:
    provider = OAuthProvider(
        name=name, authorize_url=conf.authorize_url, token_url=conf.token_url,
        device_authorization_url=conf.device_authorization_url, revocation_url=conf.revocation_url,
        revocation_style="rfc7009" if conf.revocation_url else "none", default_scopes=tuple(conf.scopes),
        scope_separator=conf.scope_separator, client_auth=conf.client_auth, pkce=conf.pkce,
        rotates_refresh_tokens=True, old_refresh_token_survives_rotation=conf.old_refresh_token_survives_rotation)
    return GenericService(name, conf.display_name or name.replace("_", " ").title(), ServiceCategory(conf.category),
                          conf.api_base_url.rstrip("/"), conf.identity_endpoint, provider,
                          RateLimit(**conf.rate_limit.model_dump()))


class ClientRegistry:
    """Resolves a service to (provider, client credentials, redirect URI)."""

    def __init__(self, config: Config, store: OAuthStore, *, credentials_dir: Path | None = None) -> None:
        self.config, self.store = config, store
        env_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        self.credentials_dir = credentials_dir or (Path(env_dir) if env_dir else None)
        self.generic = list(config.oauth.providers)
        for name, conf in config.oauth.providers.items():
            register_generic(generic_provider(name, conf))

    def close(self) -> None:
        """Take this configuration's generic providers out of the process-wide catalogue again."""
        for name in self.generic:
            unregister_generic(name)
        self.generic = []

    def _config_secret(self, service: str, conf: OAuthClientConfig) -> str | None:
        if conf.client_secret_credential:
            if self.credentials_dir is None:
                raise InvalidConfiguration(f"oauth.clients.{service}: client_secret_credential is set but no "
                                           "$CREDENTIALS_DIRECTORY is provided", field="client_secret_credential")
            return _read_secret(self.credentials_dir / conf.client_secret_credential, service)
        if conf.client_secret_file:
            return _read_secret(conf.client_secret_file, service)
        return None

    async def resolve(self, service: str, *, tenant: str | None = None) -> ResolvedClient:
        base = oauth_provider(service)          # InvalidConfiguration if the service has no OAuth
        stored = await self.store.get_client(service)
        conf = self.config.oauth.clients.get(service)
        if stored is not None:
            client = ClientCredentials(stored.client_id, stored.secret)
            auth_base, conf_tenant = stored.auth_base_url, stored.tenant
            redirect = conf.redirect_uri if conf else "http://127.0.0.1/callback"
        elif conf is not None:
            client = ClientCredentials(conf.client_id, self._config_secret(service, conf))
            auth_base, conf_tenant, redirect = conf.auth_base_url, conf.tenant, conf.redirect_uri
        else:
            raise ClientNotRegistered(f"no OAuth client is registered for {service}; add [oauth.clients.{service}] "
                                      "to the config or call oauth.clients.set (admin)")
        provider = base.with_auth_base(auth_base) if auth_base else base
        provider = provider.for_tenant(tenant or conf_tenant or DEFAULT_TENANT)
        return ResolvedClient(service, provider, client, redirect)

    async def listing(self) -> list[dict[str, Any]]:
        """Every registration, secrets redacted to a hint; run-time ones shadow config ones."""
        out = {c.service: c.redacted() for c in await self.store.clients()}
        for service, conf in self.config.oauth.clients.items():
            if service in out:
                continue
            hint = None
            try:
                secret = self._config_secret(service, conf)
                hint = redact_hint(secret) if secret else None
            except InvalidConfiguration:
                hint = "unreadable"
            out[service] = {"service": service, "client_id": conf.client_id, "secret_hint": hint,
                            "auth_base_url": conf.auth_base_url, "tenant": conf.tenant, "source": "config",
                            "updated_at": None, "updated_by": None}
        return [out[k] for k in sorted(out)]
