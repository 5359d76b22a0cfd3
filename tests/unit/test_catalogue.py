"""connectors.catalogue and connectors.factory: fifteen services, valid published limits, honest flags."""

from __future__ import annotations

import json

import pytest

from connectors.base import Connector
from connectors.catalogue import SERVICES, get_service, per_window
from connectors.factory import CONNECTORS, build_connector, connector_class
from connectors.http import HttpTransport
from connectors.limits import SmoothingBucket
from domain.errors import IntegrationFailure, InvalidConfiguration
from domain.model import ApiCredential
from domain.values import ApiKey, AuthMode, RateLimit, ServiceCategory

EXPECTED = {"gmail", "outlook", "sendgrid", "slack", "teams", "discord", "google_drive", "dropbox", "onedrive",
            "github", "gitlab", "jira", "salesforce", "hubspot", "pipedrive"}


def test_all_fifteen_services():
    assert set(SERVICES) == EXPECTED
    assert all(name == desc.name for name, desc in SERVICES.items())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_entry_is_complete_and_valid(name):
    desc = SERVICES[name]
    assert RateLimit(**desc.rate_limit.as_dict()) == desc.rate_limit     # re-validated by the value object
    assert desc.rate_limit.windows(), "a published limit bounds at least one window"
    assert desc.auth_modes and all(isinstance(m, AuthMode) for m in desc.auth_modes)
    assert isinstance(desc.category, ServiceCategory)
    assert desc.default_base_url.startswith("https://") and not desc.default_base_url.endswith("/")
    assert desc.identity_endpoint.startswith("/")
    assert desc.docs_url.startswith("https://") and desc.scopes and desc.display_name
    data = json.loads(json.dumps(desc.as_dict()))
    assert data["name"] == name and data["rate_limit"] == desc.rate_limit.as_dict()
    assert data["category"] == desc.category.value


def test_every_category_is_represented():
    assert {d.category for d in SERVICES.values()} == set(ServiceCategory)


def test_published_figures_from_the_reference():
    assert SERVICES["github"].rate_limit.per_hour == 5000
    assert SERVICES["gitlab"].rate_limit.per_minute == 2000
    assert SERVICES["hubspot"].rate_limit.per_day == 250000
    assert SERVICES["slack"].rate_limit.per_minute == 50                  # Tier 3
    assert SERVICES["salesforce"].rate_limit.per_day == 15000
    assert SERVICES["sendgrid"].auth_modes == (AuthMode.API_KEY,)
    assert SERVICES["gmail"].auth_modes == (AuthMode.OAUTH2,)


@pytest.mark.parametrize("limit,seconds,burst", [(50, 1, 10), (4, 1, 2), (100, 10, 10), (20, 2, 5)])
def test_short_window_limits_convert_conservatively(limit, seconds, burst):
    rate = per_window(limit, seconds, burst)
    bucket = SmoothingBucket("minute", rate.per_minute, 60.0, rate.burst)
    # the worst `seconds`-long window of the gate's bucket stays within the provider's short limit
    assert bucket.capacity + seconds / bucket.interval <= limit + 1e-9


def test_implemented_flags_match_the_factory():
    # issue 7 adds services one by one: the flags and the factory must agree, and the first eight stay
    assert {n for n, d in SERVICES.items() if d.implemented} == set(CONNECTORS)
    assert {"github", "slack", "sendgrid", "gmail", "google_drive", "outlook", "onedrive", "teams"} <= set(CONNECTORS)
    for name in CONNECTORS:
        cls = connector_class(name)
        assert issubclass(cls, Connector) and cls.descriptor is SERVICES[name]


def test_unknown_service_names_the_known_ones():
    with pytest.raises(InvalidConfiguration, match="unknown service 'myspace'; known: discord, dropbox"):
        get_service("myspace")
    with pytest.raises(InvalidConfiguration, match="unknown service"):
        connector_class("myspace")


def test_catalogued_but_not_implemented_is_a_clear_error():
    waiting = sorted(n for n, d in SERVICES.items() if not d.implemented)
    if not waiting:                      # every service has its connector (issue 7 done): nothing to refuse
        with pytest.raises(InvalidConfiguration, match="unknown service 'myspace'"):
            connector_class("myspace")
        return
    name = waiting[0]
    with pytest.raises(InvalidConfiguration, match=f"'{name}' \\(.*\\) is in the catalogue but has no connector"):
        connector_class(name)


def test_build_connector_uses_the_default_base_url_and_checks_the_credential_mode():
    cred = ApiCredential.from_api_key(ApiKey("ghp_" + "a" * 36))
    c = build_connector("github", cred, app_id="int_x", base_url=None, transport=HttpTransport())
    assert c.base_url == "https://api.github.com" and c.get_rate_limit() == SERVICES["github"].rate_limit
    oauth = ApiCredential.from_tokens("SG.some-access-token")
    with pytest.raises(IntegrationFailure, match="SendGrid does not accept oauth2 credentials"):
        build_connector("sendgrid", oauth, app_id="int_x", base_url=None, transport=HttpTransport())
