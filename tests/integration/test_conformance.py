"""The shared conformance test: the same checks over every service of the catalogue, against its emulator.

A sixteenth service gets these checks for free once it has a catalogue entry, a connector in
``connectors.factory.CONNECTORS`` and an emulator in ``connectors.emulators.EMULATORS``; until then its cases are
skipped with the reason. Per service, over real loopback HTTP:

- the descriptor is sane (identity endpoint, auth modes, https base, scopes, docs, limits a CallGate accepts);
- a token of the emulator authenticates (``ApiCredential.from_api_key`` when the service takes API keys, else
  ``from_tokens``), including one added later with ``emu.add_token``, and ``validate_connection`` is ok;
- an unknown token is AUTH_FAILED (authenticate and health) and the token is in no message;
- ``error_rate=1.0`` is SERVICE_UNAVAILABLE after 1 + 3 attempts (the default retry policy);
- ``rate_limit_burst`` answers are retried after their Retry-After and the call succeeds;
- ``python -m connectors.emulators --list`` names it;
- each stream of the service in ``connectors.streams.STREAMS`` pulls one page of a full pass whose records have
  ids (the resource comes from RESOURCES below, else from the usual names; a stream whose resource cannot be
  found is skipped with the reason).

Sleeps are recorded, never slept, so the whole module runs in a few seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.base import ApiRequest, CallRecord, Connector
from connectors.catalogue import SERVICES
from connectors.emulators import EMULATORS
from connectors.emulators.__main__ import main as emulator_cli
from connectors.factory import CONNECTORS, build_connector
from connectors.http import HttpTransport
from connectors.limits import CallGate, MemoryQuotaStore
from connectors.streams import STREAMS, Stream
from domain.clock import FakeClock
from domain.errors import IntegrationError, IntegrationFailure
from domain.model import ApiCredential
from domain.values import ApiKey, AuthMode

TOKEN = "conformance-token-0000000000000000000001"
LATER = "conformance-token-0000000000000000000002"
UNKNOWN = "conformance-unknown-00000000000000000003"
AUTH = IntegrationError.AUTHENTICATION_FAILED
DOWN = IntegrationError.SERVICE_UNAVAILABLE
GENERIC_RESOURCES = ("me", "all", "", "default", "@me")


def credential(service: str, token: str) -> ApiCredential:
    """What the brief promises every connector accepts for an emulator's token."""
    if AuthMode.API_KEY in SERVICES[service].auth_modes:
        return ApiCredential.from_api_key(ApiKey(token))
    return ApiCredential.from_tokens(token)


@dataclass
class Env:
    service: str
    emu: Any
    transport: HttpTransport
    clock: FakeClock
    sleeps: list[float] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def connector(self, token: str = TOKEN, **kw: Any) -> Connector:
        return build_connector(self.service, credential(self.service, token), app_id=f"int_conf_{self.service}",
                               base_url=self.emu.base_url, transport=self.transport, clock=self.clock,
                               sleep=self.sleep, observer=self.records.append, **kw)


def _not_ready(service: str) -> str | None:
    desc = SERVICES[service]
    if not desc.implemented or service not in CONNECTORS:
        return f"{desc.display_name} has no connector yet (catalogue implemented={desc.implemented})"
    if service not in EMULATORS:
        return f"{desc.display_name} has no emulator in connectors.emulators.EMULATORS yet"
    return None


@pytest.fixture(params=sorted(SERVICES))
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    service = request.param
    reason = _not_ready(service)
    if reason is not None:
        pytest.skip(reason)
    clock = FakeClock()
    emu = EMULATORS[service](tokens=[TOKEN], seed=1)
    await emu.start()
    transport = HttpTransport(user_agent="integd-conformance")
    try:
        yield Env(service, emu, transport, clock)
    finally:
        await transport.close()
        await emu.stop()


# ---- the descriptor ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_descriptor_is_sane(service: str) -> None:
    desc = SERVICES[service]
    assert desc.name == service and desc.display_name and desc.auth_modes
    assert desc.identity_endpoint.startswith("/") and " " not in desc.identity_endpoint
    assert desc.default_base_url.startswith("https://") and desc.docs_url.startswith("https://")
    assert desc.scopes and all(isinstance(s, str) and s for s in desc.scopes)
    limit = desc.rate_limit
    windows = [w for w in (limit.per_minute, limit.per_hour, limit.per_day) if w is not None]
    assert windows and all(w > 0 for w in windows), f"{service} publishes no usable limit"
    assert limit.burst is None or limit.per_minute is None or limit.burst <= limit.per_minute
    reason = _not_ready(service)
    if reason is None:
        assert CONNECTORS[service].descriptor is desc


async def test_the_catalogue_limits_make_a_working_gate(env: Env) -> None:
    gate = CallGate("int_conf", SERVICES[env.service].rate_limit, store=MemoryQuotaStore(), clock=env.clock,
                    sleep=env.sleep)
    connector = env.connector(gate=gate)
    assert (await connector.authenticate()).account_id
    assert env.sleeps == [] and gate.usage()["windows"]


# ---- authentication and health ----------------------------------------------------------------------------------

async def test_a_valid_token_authenticates_through_the_identity_endpoint(env: Env) -> None:
    connector = env.connector()
    identity = await connector.authenticate()
    assert identity.account_id and identity.display and TOKEN not in repr(identity)
    request = connector.identity_request()
    assert request.path.endswith(SERVICES[env.service].identity_endpoint.split("?")[0])
    assert env.records and env.records[-1].outcome == "ok" and env.records[-1].status == 200
    health = await connector.validate_connection()
    assert health.ok and health.status == 200 and health.sent
    env.emu.add_token(LATER)
    assert (await env.connector(LATER).authenticate()).account_id


async def test_an_unknown_token_is_an_auth_failure_that_never_shows_the_token(env: Env) -> None:
    connector = env.connector(UNKNOWN)
    with pytest.raises(IntegrationFailure) as info:
        await connector.authenticate()
    failure = info.value
    assert failure.category is AUTH, f"{env.service}: {failure}"
    assert UNKNOWN not in str(failure) and UNKNOWN not in repr(failure)
    assert len(env.records) == 1, "an auth failure is never retried"
    health = await connector.validate_connection()
    assert not health.ok and health.category is AUTH and UNKNOWN not in health.message
    assert all(UNKNOWN not in (r.error or "") and UNKNOWN not in r.path for r in env.records)


# ---- faults -----------------------------------------------------------------------------------------------------

async def test_server_errors_are_service_unavailable_after_one_plus_three_attempts(env: Env) -> None:
    env.emu.faults.error_rate = 1.0
    connector = env.connector()
    with pytest.raises(IntegrationFailure) as info:
        await connector.send_request(connector.identity_request(), interactive=False)
    assert info.value.category is DOWN, f"{env.service}: {info.value}"
    assert [r.outcome for r in env.records] == [DOWN.value] * 4 and len(env.sleeps) == 3


async def test_a_rate_limit_burst_is_retried_and_succeeds(env: Env) -> None:
    env.emu.faults.rate_limit_burst = 1
    env.emu.faults.burst_retry_after = 1
    connector = env.connector()
    answer = await connector.send_request(connector.identity_request(), interactive=False)
    assert answer.ok and answer.attempts == 2
    assert [r.outcome for r in env.records] == [IntegrationError.RATE_LIMIT_EXCEEDED.value, "ok"]
    assert len(env.sleeps) == 1 and env.sleeps[0] >= 1.0


# ---- streams ----------------------------------------------------------------------------------------------------

async def _first(connector: Connector, request: ApiRequest, pick: Callable[[Any], Any]) -> str:
    answer = await connector.send_request(request)
    assert answer.ok, f"resource lookup {request.path} answered {answer.status}"
    return str(pick(answer.body))


# How to find a resource worth syncing, through the service's own API (never the emulator's internals).
RESOURCES: dict[tuple[str, str], Callable[[Connector], Awaitable[str]]] = {
    ("github", "issues"): lambda c: _first(c, ApiRequest("GET", "/user/repos"), lambda b: b[0]["full_name"]),
    ("gitlab", "issues"): lambda c: _first(c, ApiRequest("GET", "/projects", params={"membership": "true"}),
                                           lambda b: b[0]["id"]),
    ("slack", "messages"): lambda c: _first(c, ApiRequest("GET", "/conversations.list"),
                                            lambda b: b["channels"][0]["id"]),
    ("jira", "issues"): lambda c: _first(c, ApiRequest("GET", "/project"), lambda b: b[0]["key"]),
    ("discord", "messages"): lambda c: _discord_channel(c),
}


async def _discord_channel(connector: Connector) -> str:
    guild = await _first(connector, ApiRequest("GET", "/users/@me/guilds"), lambda b: b[0]["id"])
    return await _first(connector, ApiRequest("GET", f"/guilds/{guild}/channels"),
                        lambda b: next(ch["id"] for ch in b if ch.get("type") == 0))


async def _resource(stream: type[Stream], connector: Connector) -> str | None:
    finder = RESOURCES.get((stream.service, stream.name))
    if finder is not None:
        return await finder(connector)
    for candidate in GENERIC_RESOURCES:
        try:
            return stream.check_resource(candidate)
        except ValueError:
            continue
    return None


async def test_each_stream_pulls_a_first_page_of_records_with_ids(env: Env) -> None:
    streams = [cls for (service, _), cls in sorted(STREAMS.items()) if service == env.service]
    if not streams:
        pytest.skip(f"{env.service} has no stream in connectors.streams.STREAMS")
    connector = env.connector()
    skipped = []
    for cls in streams:
        resource = await _resource(cls, connector)
        if resource is None:
            skipped.append(f"{cls.service}/{cls.name}: no resource known; add it to RESOURCES")
            continue
        stream = cls(connector, resource, page_size=5)
        page = await stream.pull(stream.start_cursor(None, full=True, pass_token="conformance"))
        assert page.records, f"{cls.service}/{cls.name} on {resource!r}: a full pass found nothing"
        assert all(r.remote_id and isinstance(r.remote_id, str) for r in page.records)
        assert len({r.remote_id for r in page.records}) == len(page.records)
        assert isinstance(page.cursor, dict) and (page.done or page.cursor)
    if skipped:
        pytest.skip("; ".join(skipped))



# ---- the command line -------------------------------------------------------------------------------------------

def test_the_command_line_lists_every_ready_service(capsys: pytest.CaptureFixture[str]) -> None:
    # the subprocess run costs about a second of CPU per service, so it is proved once per emulator module
    # (tests/integration/test_emulators_cli.py and the services' own tests); here: every emulator is reachable
    assert emulator_cli(["--list"]) == 0
    listed = {line.split("\t")[0] for line in capsys.readouterr().out.splitlines()}
    ready = {name for name in SERVICES if _not_ready(name) is None}
    assert ready <= listed, f"not in python -m connectors.emulators --list: {sorted(ready - listed)}"
