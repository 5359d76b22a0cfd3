"""The OAuth methods' params and results (style of integd.api; error codes -32015..-32023 are listed there).

    oauth.begin          {service, flow?, scopes?, name?, tenant?, base_url?}   -> FlowView
    oauth.complete       {flow_id, redirect_url | code}                        -> FlowView (state completed)
    oauth.status         {flow_id}                                             -> FlowView
    oauth.cancel         {flow_id}                                             -> FlowView (state cancelled)
    oauth.clients.set    {service, client_id, client_secret?, auth_base_url?, tenant?}  (admin) -> ClientView
    oauth.clients.list   {}                                                    -> [ClientView] (secrets as hints)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from integd.api import ActingParams, NoParams, Params, Result

__all__ = ["NoParams"]

FlowKind = Literal["loopback", "paste", "device"]
FlowState = Literal["started", "authorized", "completed", "failed", "expired", "cancelled"]
ServiceName = Field(..., min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")


class BeginParams(ActingParams):
    service: str = ServiceName
    flow: FlowKind = Field("loopback", description="loopback listener, paste-back of the redirect, or device grant")
    scopes: list[str] | None = Field(None, max_length=50, description="default: the provider's default scopes")
    name: str | None = Field(None, max_length=80, description="the app's name (default: the service)")
    tenant: str | None = Field(None, max_length=100, description="Microsoft tenant (default: common)")
    base_url: str | None = Field(None, max_length=500, description="API base URL (enterprise host, emulator)")


class FlowRef(ActingParams):
    flow_id: str = Field(..., min_length=1, max_length=64)


class CompleteParams(FlowRef):
    redirect_url: SecretStr | None = Field(None, description="the whole URL the browser was redirected to")
    code: SecretStr | None = Field(None, description="or the bare authorization code")

    @model_validator(mode="after")
    def _one(self) -> CompleteParams:
        if (self.redirect_url is None) == (self.code is None):
            raise ValueError("give exactly one of redirect_url or code")
        return self

    @property
    def pasted(self) -> str:
        value = self.redirect_url if self.redirect_url is not None else self.code
        assert value is not None
        return value.get_secret_value()


class FlowView(Result):
    flow_id: str
    service: str
    flow: FlowKind
    state: FlowState
    expires_at: float
    authorization_url: str | None = None
    redirect_uri: str | None = None
    user_code: str | None = None
    verification_uri: str | None = None
    verification_uri_complete: str | None = None
    interval: float | None = None
    app_id: str | None = None
    error: str | None = None


class ClientSetParams(Params):
    service: str = ServiceName
    client_id: str = Field(..., min_length=1, max_length=256)
    client_secret: SecretStr | None = Field(None, description="stored encrypted; omit for a public client")
    auth_base_url: str | None = Field(None, max_length=500)
    tenant: str | None = Field(None, max_length=100)


class ClientView(Result):
    service: str
    client_id: str
    secret_hint: str | None = None
    auth_base_url: str | None = None
    tenant: str | None = None
    source: Literal["config", "runtime"]
    updated_at: float | None = None
    updated_by: str | None = None
