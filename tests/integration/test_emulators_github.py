"""GitHub emulator over real loopback HTTP: identity, pagination, issues, primary and anonymous limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from connectors.emulators import GitHubEmulator, ManualClock

TOKEN = "ghp_demo123"
OTHER = "ghp_other456"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)  # 800 s into an hour, 20 s into a minute


@pytest.fixture
async def emu(clock: ManualClock) -> AsyncIterator[GitHubEmulator]:
    emulator = GitHubEmulator(tokens=[TOKEN], seed=1, clock=clock)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def auth(token: str = TOKEN, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


async def get(http: aiohttp.ClientSession, url: str, **kw: object) -> tuple[int, object, aiohttp.typedefs.LooseHeaders]:
    async with http.get(url, **kw) as resp:
        return resp.status, await resp.json(), resp.headers


async def test_user_with_good_token_in_both_schemes(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    status, body, headers = await get(http, emu.base_url + "/user", headers=auth())
    assert status == 200
    assert set(body) >= {"login", "id", "node_id", "name", "email", "type"}
    assert body["type"] == "User"
    assert headers["X-OAuth-Scopes"] == "repo, read:user, user:email"
    status, again, _ = await get(http, emu.base_url + "/user", headers=auth(scheme="token"))
    assert status == 200 and again["login"] == body["login"]
    status, ghes, _ = await get(http, emu.base_url + "/api/v3/user", headers=auth())
    assert status == 200 and ghes["id"] == body["id"]
    assert ghes["url"].startswith(emu.base_url + "/api/v3/")
    assert emu.hits("/user") == 3


async def test_identity_is_derived_from_the_token(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    other = GitHubEmulator(tokens=[TOKEN], seed=99)
    await other.start()
    try:
        _, mine, _ = await get(http, emu.base_url + "/user", headers=auth())
        _, theirs, _ = await get(http, other.base_url + "/user", headers=auth())
    finally:
        await other.stop()
    assert (mine["login"], mine["id"]) == (theirs["login"], theirs["id"])


async def test_unknown_missing_and_revoked_tokens(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    status, body, _ = await get(http, emu.base_url + "/user", headers=auth("ghp_nope"))
    assert (status, body) == (401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
                                    "status": "401"})
    status, body, _ = await get(http, emu.base_url + "/user")
    assert status == 401 and body["message"] == "Requires authentication"
    status, body, _ = await get(http, emu.base_url + "/user", headers={"Authorization": "Basic abc"})
    assert status == 401 and body["message"] == "Bad credentials"
    emu.revoke(TOKEN)
    status, body, _ = await get(http, emu.base_url + "/user", headers=auth())
    assert status == 401 and body["message"] == "Bad credentials"
    emu.add_token(OTHER)
    status, _, _ = await get(http, emu.base_url + "/user", headers=auth(OTHER))
    assert status == 200


async def test_token_scheme_is_a_knob(clock: ManualClock, http: aiohttp.ClientSession) -> None:
    emulator = GitHubEmulator(tokens=[TOKEN], clock=clock, options={"accept_token_scheme": False})
    await emulator.start()
    try:
        status, _, _ = await get(http, emulator.base_url + "/user", headers=auth(scheme="token"))
    finally:
        await emulator.stop()
    assert status == 401


async def walk(http: aiohttp.ClientSession, url: str) -> tuple[list[dict], list[str]]:
    """Follow rel=next links as a client should, collecting items and the Link headers seen."""
    items, links = [], []
    while url:
        async with http.get(url, headers=auth()) as resp:
            assert resp.status == 200
            items += await resp.json()
            links.append(resp.headers.get("Link", ""))
            url = resp.links.get("next", {}).get("url")
            url = str(url) if url else ""
    return items, links


async def test_user_repos_pagination_walks_every_page_once(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    repos, links = await walk(http, emu.base_url + "/user/repos")
    assert len(repos) == 45 and len({r["id"] for r in repos}) == 45
    assert len(links) == 2  # default per_page 30
    assert 'rel="next"' in links[0] and 'rel="last"' in links[0] and 'rel="prev"' not in links[0]
    assert 'rel="prev"' in links[1] and 'rel="first"' in links[1] and 'rel="next"' not in links[1]
    names = [r["full_name"].lower() for r in repos]
    assert names == sorted(names)
    small, small_links = await walk(http, emu.base_url + "/user/repos?per_page=7")
    assert [r["id"] for r in small] == [r["id"] for r in repos] and len(small_links) == 7
    big, _ = await walk(http, emu.base_url + "/user/repos?per_page=1000")  # clamped to 100: one page
    assert len(big) == 45


async def test_issues_incremental_sync_query(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    _, repos, _ = await get(http, emu.base_url + "/user/repos", headers=auth())
    repo = repos[0]["full_name"]
    everything, _ = await walk(http, f"{emu.base_url}/repos/{repo}/issues?state=all&per_page=10")
    assert len(everything) == 57 and len({i["number"] for i in everything}) == 57
    assert any("pull_request" in i for i in everything)
    since = sorted(i["updated_at"] for i in everything)[30]
    url = f"{emu.base_url}/repos/{repo}/issues?state=all&sort=updated&direction=asc&since={since}&per_page=5"
    recent, _ = await walk(http, url)
    assert [i["updated_at"] for i in recent] == sorted(i["updated_at"] for i in everything if i["updated_at"] >= since)
    open_only, _ = await walk(http, f"{emu.base_url}/repos/{repo}/issues?per_page=100")
    assert {i["state"] for i in open_only} == {"open"}
    status, body, _ = await get(http, f"{emu.base_url}/repos/{repo}/issues?since=yesterday", headers=auth())
    assert status == 422 and body["errors"][0]["field"] == "since"


async def test_repo_lookup_and_not_found(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    _, repos, _ = await get(http, emu.base_url + "/user/repos?per_page=100", headers=auth())
    public = next(r for r in repos if not r["private"])
    private = next(r for r in repos if r["private"])
    status, body, _ = await get(http, f"{emu.base_url}/repos/{public['full_name']}", headers=auth())
    assert status == 200 and body["id"] == public["id"]
    status, body, _ = await get(http, f"{emu.base_url}/repos/nobody/nothing", headers=auth())
    assert status == 404 and body["message"] == "Not Found"
    emu.add_token(OTHER)
    status, _, _ = await get(http, f"{emu.base_url}/repos/{private['full_name']}", headers=auth(OTHER))
    assert status == 404  # someone else's private repository is hidden, not forbidden
    status, _, headers = await get(http, f"{emu.base_url}/repos/{public['full_name']}")  # anonymous
    assert status == 200 and headers["x-ratelimit-limit"] == "60"


async def test_create_and_update_issue(emu: GitHubEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    _, repos, _ = await get(http, emu.base_url + "/user/repos", headers=auth())
    issues_url = f"{emu.base_url}/repos/{repos[0]['full_name']}/issues"
    async with http.post(issues_url, json={"body": "no title"}, headers=auth()) as resp:
        body = await resp.json()
        assert resp.status == 422 and body["message"] == "Validation Failed"
        assert body["errors"] == [{"resource": "Issue", "code": "missing_field", "field": "title"}]
    async with http.post(issues_url, data=b"{not json", headers=auth()) as resp:
        assert resp.status == 400 and (await resp.json())["message"] == "Problems parsing JSON"
    async with http.post(issues_url, json={"title": "Found a bug", "labels": ["bug"]}) as resp:
        assert resp.status == 401
    async with http.post(issues_url, json={"title": "Found a bug", "labels": ["bug"]}, headers=auth()) as resp:
        created = await resp.json()
        assert resp.status == 201 and created["number"] == 58 and created["state"] == "open"
        assert created["html_url"].endswith(f"/issues/{created['number']}") and isinstance(created["id"], int)
        assert resp.headers["Location"] == created["url"]
    clock.advance(120)
    async with http.patch(f"{issues_url}/{created['number']}", json={"state": "closed"}, headers=auth()) as resp:
        updated = await resp.json()
        assert resp.status == 200 and updated["state"] == "closed" and updated["closed_at"]
        assert updated["updated_at"] > created["updated_at"]
    async with http.patch(f"{issues_url}/9999", json={"state": "closed"}, headers=auth()) as resp:
        assert resp.status == 404
    async with http.patch(f"{issues_url}/1", json={"state": "sideways"}, headers=auth()) as resp:
        assert resp.status == 422
    closed, _ = await walk(http, issues_url + "?state=closed&per_page=100")
    assert created["number"] in {i["number"] for i in closed}


async def test_rate_window_rejects_exactly_the_extra_request(
        emu: GitHubEmulator, http: aiohttp.ClientSession, clock: ManualClock) -> None:
    emu.set_rate_limit(limit=3, window=60.0)
    seen = []
    for _ in range(3):
        status, _, headers = await get(http, emu.base_url + "/user", headers=auth())
        seen.append((status, headers["x-ratelimit-remaining"], headers["x-ratelimit-used"]))
        assert headers["x-ratelimit-limit"] == "3" and headers["x-ratelimit-resource"] == "core"
        assert headers["x-ratelimit-reset"] == "1700000040"  # the minute boundary after 1_700_000_000
    assert seen == [(200, "2", "1"), (200, "1", "2"), (200, "0", "3")]
    status, body, _ = await get(http, emu.base_url + "/rate_limit", headers=auth())  # does not count
    assert status == 200 and body["resources"]["core"]["remaining"] == 0 and body["rate"]["used"] == 3
    status, body, headers = await get(http, emu.base_url + "/user", headers=auth())
    assert status == 403 and headers["x-ratelimit-remaining"] == "0"
    assert body["message"].startswith("API rate limit exceeded for user ID ")
    assert "retry-after" not in headers
    clock.advance(40)  # the next window
    status, _, headers = await get(http, emu.base_url + "/user", headers=auth())
    assert status == 200 and headers["x-ratelimit-remaining"] == "2" and headers["x-ratelimit-reset"] == "1700000100"


async def test_default_quota_and_429_knob(clock: ManualClock, http: aiohttp.ClientSession) -> None:
    emulator = GitHubEmulator(tokens=[TOKEN], clock=clock, options={"rate_limit_status": 429})
    await emulator.start()
    try:
        _, _, headers = await get(http, emulator.base_url + "/user", headers=auth())
        assert headers["x-ratelimit-limit"] == "5000" and headers["x-ratelimit-reset"] == "1700002800"
        emulator.set_rate_limit(1, 3600)
        await get(http, emulator.base_url + "/user", headers=auth())
        status, _, _ = await get(http, emulator.base_url + "/user", headers=auth())
    finally:
        await emulator.stop()
    assert status == 429


async def test_anonymous_quota_is_per_address(clock: ManualClock, http: aiohttp.ClientSession) -> None:
    emulator = GitHubEmulator(tokens=[TOKEN], clock=clock, options={"anonymous_limit": 2})
    await emulator.start()
    try:
        _, repos, _ = await get(http, emulator.base_url + "/user/repos", headers=auth())
        public = next(r for r in repos if not r["private"])
        url = f"{emulator.base_url}/repos/{public['full_name']}"
        statuses = [(await get(http, url))[0] for _ in range(3)]
        _, body, _ = await get(http, url)
    finally:
        await emulator.stop()
    assert statuses == [200, 200, 403]
    assert body["message"].startswith("API rate limit exceeded for 127.0.0.1.")


async def test_concurrent_requests_never_exceed_the_limit(emu: GitHubEmulator, http: aiohttp.ClientSession) -> None:
    emu.set_rate_limit(limit=20, window=3600.0)

    async def one() -> tuple[int, str]:
        async with http.get(emu.base_url + "/user", headers=auth()) as resp:
            await resp.read()
            return resp.status, resp.headers["x-ratelimit-used"]

    answers = await asyncio.gather(*(one() for _ in range(30)))
    assert sorted(status for status, _ in answers) == [200] * 20 + [403] * 10
    assert sorted(int(used) for status, used in answers if status == 200) == list(range(1, 21))
