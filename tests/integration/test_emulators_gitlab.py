"""The GitLab emulator on the wire (raw aiohttp, no connector): auth header variants, RateLimit-* headers, the
429 `Retry later` answer, keyset links, error bodies, validation, the control API and the CLI entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from connectors.emulators import EMULATORS, ManualClock
from connectors.emulators.base import EmulatorInputError

PAT = "glpat-emulator-test-000000000001"


@pytest.fixture
async def emu() -> AsyncIterator[Any]:
    clock = ManualClock(1_700_000_000.0)
    emulator = EMULATORS["gitlab"](tokens=[PAT], seed=1, clock=clock)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()


async def get(emu: Any, path: str, headers: dict[str, str] | None = None, **params: str) -> tuple[int, dict, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(emu.base_url + path, headers=headers or {}, params=params) as resp:
            body = await (resp.json() if "json" in resp.content_type else resp.text())
            return resp.status, dict(resp.headers), body


@pytest.mark.parametrize("how", ["private", "bearer", "query"])
async def test_every_documented_way_of_sending_a_token_works(emu, how):
    headers = {"private": {"PRIVATE-TOKEN": PAT}, "bearer": {"Authorization": f"Bearer {PAT}"}, "query": {}}[how]
    params = {"private_token": PAT} if how == "query" else {}
    status, headers_out, body = await get(emu, "/user", headers, **params)
    assert status == 200 and body["username"] == emu.users[PAT].username and body["state"] == "active"
    assert headers_out["RateLimit-Name"] == "throttle_authenticated_api"
    assert {"RateLimit-Limit", "RateLimit-Observed", "RateLimit-Remaining", "RateLimit-Reset"} <= set(headers_out)


async def test_bad_tokens_get_gitlabs_401(emu):
    for headers in ({}, {"PRIVATE-TOKEN": "glpat-unknown-000000"}, {"Authorization": "Basic abc"}):
        status, _, body = await get(emu, "/user", headers)
        assert status == 401 and body == {"message": "401 Unauthorized"}


async def test_the_window_runs_out_with_retry_later(emu):
    emu.set_rate_limit(2, 60)
    for _ in range(2):
        assert (await get(emu, "/user", {"PRIVATE-TOKEN": PAT}))[0] == 200
    status, headers, body = await get(emu, "/user", {"PRIVATE-TOKEN": PAT})
    assert status == 429 and body == "Retry later\n" and headers["Retry-After"] == "40"
    assert headers["RateLimit-Remaining"] == "0" and headers["RateLimit-ResetTime"].endswith("GMT")


async def test_headers_can_be_switched_off_like_an_unthrottled_instance(emu):
    emu.options.rate_limit_headers = False
    _, headers, _ = await get(emu, "/user", {"PRIVATE-TOKEN": PAT})
    assert not any(h.startswith("RateLimit") for h in headers)


async def test_keyset_links_carry_a_cursor_and_a_forged_one_is_a_400(emu):
    project = emu.project_of(PAT)
    path = f"/projects/{project.id}/issues"
    status, headers, body = await get(emu, path, {"PRIVATE-TOKEN": PAT}, pagination="keyset",
                                      order_by="updated_at", sort="asc", per_page="5")
    assert status == 200 and len(body) == 5 and "cursor=" in headers["Link"] and 'rel="next"' in headers["Link"]
    status, _, body = await get(emu, path, {"PRIVATE-TOKEN": PAT}, pagination="keyset", cursor="Zm9v")
    assert status == 400 and body == {"message": "400 Bad request - invalid cursor"}
    status, _, body = await get(emu, path, {"PRIVATE-TOKEN": PAT}, updated_after="yesterday")
    assert status == 400 and body == {"error": "updated_after is invalid"}


async def test_not_found_shapes(emu):
    assert (await get(emu, "/projects/1/issues", {"PRIVATE-TOKEN": PAT}))[2] == {"message": "404 Project Not Found"}
    project = emu.project_of(PAT)
    status, _, body = await get(emu, f"/projects/{project.id}/issues/9999", {"PRIVATE-TOKEN": PAT})
    assert status == 404 and body == {"message": "404 Issue Not Found"}
    assert (await get(emu, "/nowhere", {"PRIVATE-TOKEN": PAT}))[2] == {"error": "404 Not Found"}


async def test_create_needs_a_title_and_the_api_scope(emu):
    project = emu.project_of(PAT)
    async with aiohttp.ClientSession() as http:
        url = f"{emu.base_url}/projects/{project.id}/issues"
        async with http.post(url, json={"description": "x"}, headers={"PRIVATE-TOKEN": PAT}) as resp:
            assert resp.status == 400 and await resp.json() == {"error": "title is missing"}
        emu.add_token("glpat-readonly-00000000001", scopes=["read_api"])
        async with http.post(url, json={"title": "x"}, headers={"PRIVATE-TOKEN": "glpat-readonly-00000000001"}) as r:
            assert r.status == 403 and (await r.json())["error"] == "insufficient_scope"
        async with http.post(url, data={"title": "form-encoded works too"}, headers={"PRIVATE-TOKEN": PAT}) as r:
            assert r.status == 201 and (await r.json())["iid"] == 43


async def test_faults_and_options_are_validated(emu):
    with pytest.raises(EmulatorInputError, match="gitlab options"):
        EMULATORS["gitlab"](options={"issues_per_project": -1})
    emu.faults.error_rate = 1.0
    status, _, _ = await get(emu, "/user", {"PRIVATE-TOKEN": PAT})
    assert status in (500, 502, 503)


async def test_issue_hook_deliveries_pass_the_gitlab_verifier(emu):
    from connectors.webhooks import VERIFIERS, WebhookRejected
    project = emu.project_of(PAT)
    headers, body = emu.hook_delivery(project.id, 3, "hook-secret")
    again_headers, _ = emu.hook_delivery(project.id, 3, "hook-secret")
    delivery = VERIFIERS["gitlab"].verify(headers, body, b"hook-secret", 0.0)
    assert delivery == headers["Idempotency-Key"] != again_headers["Idempotency-Key"]
    assert headers["X-Gitlab-Event"] == "Issue Hook" and b'"object_kind": "issue"' in body
    with pytest.raises(WebhookRejected):
        VERIFIERS["gitlab"].verify(headers, body, b"another-secret", 0.0)
