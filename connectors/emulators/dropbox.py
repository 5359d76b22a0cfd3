"""Dropbox API v2 emulator (reference: apis-storage-dev.md §2).

One server plays the three hosts: ``/2/...`` RPC routes (api.dropboxapi.com), ``/2/files/upload`` and
``/2/files/download`` (content.dropboxapi.com: argument in ``Dropbox-API-Arg``, result metadata of a download in
``Dropbox-API-Result``), ``/2/files/list_folder/longpoll`` (notify.dropboxapi.com, no Authorization), and the
OAuth endpoints ``GET /oauth2/authorize`` (www.dropbox.com) and ``POST /oauth2/token``: PKCE, 4-hour access
tokens (``sl.u.`` prefix), refresh tokens that never rotate (a refresh answer has no ``refresh_token``),
``account_id`` and ``uid`` in every token answer. ``POST /2/auth/token/revoke`` kills the caller's grant.

Every route is POST with a JSON body (``null`` or nothing for no-argument routes). Answers, as Dropbox::

    400 text/plain   Error in call to API function "files/list_folder": <what is wrong>     (bad input)
    401 JSON         {"error_summary": "invalid_access_token/..", "error": {".tag": "invalid_access_token"}}
                     expired_access_token (issued tokens past their lifetime), missing_scope (+required_scope)
    409 JSON         route errors: path/not_found/, path/conflict/file/ (upload mode add or update rev), reset/
    429 JSON         {"error_summary": "too_many_requests/..", "error": {"reason": {".tag": "too_many_requests"},
                      "retry_after": N}} and Retry-After (knob: write routes say too_many_write_operations)
    500/503          faults (text)

No rate numbers are published: the default window (1,000 per minute per token) is a knob
(``emu.set_rate_limit``). Unverified facts are knobs too: the longpoll's refusal of an Authorization header
(``longpoll_refuses_auth``) and its ``backoff`` (``longpoll_backoff``).

Data: each account (derived from the token or the OAuth grant's subject) gets a seeded tree of folders and text
files; tests change it as another client would with ``put_file`` / ``delete_path`` (entering the change log), and
``signed_notification`` builds the webhook POST Dropbox would send about it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, BodyTooLarge, Call, Emulator, Quota, Reply, Route,
                   TokenRecord, TokenStatus, WindowState, digest_int, json_response, pick, read_body,
                   seeded)
from .dropbox_fs import CursorInvalid, CursorReset, FileSystem, Listing
from .oauth import AuthorizationServer, Dialect, OAuthServerOptions

OAUTH_OPTIONS = dict(authorize_path="/oauth2/authorize", token_path="/oauth2/token", device_path=None,
                     revoke_path=None, access_token_lifetime=14400.0, rotate_refresh_tokens=False,
                     access_prefix="sl.u.", refresh_prefix="")
ALL_SCOPES = ("account_info.read", "files.metadata.read", "files.content.read", "files.content.write")
DATA_EPOCH = 1_690_000_000
FOLDERS = ("Documents", "Photos", "Projects", "Notes")


class DropboxOptions(BaseModel):
    """Knobs for facts the reference marks unverified or that tests want to vary."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    files_per_user: int = Field(24, ge=0, le=20_000)
    cursor_retention: int = Field(10_000, ge=1, description="changes kept; older cursors get reset")
    longpoll_max_wait: float | None = Field(None, gt=0, description="cap on a longpoll's wait (tests)")
    longpoll_backoff: int | None = Field(None, ge=1, le=300)
    longpoll_refuses_auth: bool = True
    write_limit_reason: bool = False      # 429s on write routes say too_many_write_operations


@dataclass
class Account:
    account_id: str
    given: str
    surname: str
    email: str
    uid: int


def derive_account(subject: str) -> Account:
    n = digest_int("dropbox-account", subject)
    given, surname = pick(FIRST_NAMES, n), pick(LAST_NAMES, n >> 8)
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    ident = "".join(chars[(n >> (6 * i)) % 64] for i in range(10))
    return Account(f"dbid:AA{ident}{n % 10**8:08d}", given, surname,
                   f"{given.lower()}.{surname.lower()}{n % 1000}@example.com", n % 10**9)


def bad_input(route: str, what: str) -> Reply:
    return Reply(web.Response(status=400, text=f'Error in call to API function "{route}": {what}',
                              content_type="text/plain"))


def route_error(summary: str, error: dict[str, Any], status: int = 409) -> Reply:
    return Reply(json_response({"error_summary": summary + "..", "error": error}, status))


def path_not_found(tag: str = "path") -> Reply:
    return route_error(f"{tag}/not_found/", {".tag": tag, tag: {".tag": "not_found"}})


class DropboxDialect(Dialect):
    """Dropbox's token answers: ``token_type: bearer``, ``account_id`` and ``uid`` of the grant's account, and
    no ``refresh_token`` in a refresh answer (the original never rotates)."""

    def __init__(self, emu: DropboxEmulator) -> None:
        self.emu = emu
        self._issued: set[str] = set()

    def token_ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        record = self.emu.tokens.get(body["access_token"])
        account = derive_account(record.subject if record and record.subject else body["access_token"])
        body = {**body, "token_type": "bearer", "account_id": account.account_id, "uid": str(account.uid)}
        refresh = body.get("refresh_token")
        if refresh in self._issued:
            del body["refresh_token"]
        elif refresh:
            self._issued.add(refresh)
        return super().token_ok(request, body)


class DropboxEmulator(Emulator):
    """Example: ``emu = DropboxEmulator(tokens=["sl.demo-token"], seed=1); base = await emu.start()``."""

    service: ClassVar[str] = "dropbox"
    prefixes = ("/2",)
    default_rate = (1000, 60.0)
    default_scopes = ALL_SCOPES
    options_model = DropboxOptions
    max_body = 16 * 1024 * 1024
    fallback_auth = "none"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.accounts: dict[str, Account] = {}         # token -> account
        self.filesystems: dict[str, FileSystem] = {}   # account id -> its files
        self.longpoll_waiting = asyncio.Event()        # set while a longpoll waits for a change (tests)
        super().__init__(*args, **kwargs)
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS), dialect=DropboxDialect(self))

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    def on_token_added(self, record: TokenRecord) -> None:
        self.accounts[record.token] = derive_account(record.subject or record.token)

    # ---- data ------------------------------------------------------------------------------------------
    def fs_of(self, account: Account) -> FileSystem:
        fs = self.filesystems.get(account.account_id)
        if fs is None:
            fs = FileSystem(account.account_id, self.seed, self.options.cursor_retention)
            rng = seeded(self.seed, "dropbox-files", account.account_id)
            for i in range(self.options.files_per_user):
                folder = FOLDERS[i % len(FOLDERS)]
                name = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}-{i}.txt"
                fs.put(f"/{folder}/{name}", f"{name}\n{rng.random()}\n".encode(), now=DATA_EPOCH + 3600 * i)
            self.filesystems[account.account_id] = fs
        fs.retention = self.options.cursor_retention
        return fs

    def fs_for_token(self, token: str) -> FileSystem:
        """The files of the account behind ``token`` (tests change them as another client would)."""
        return self.fs_of(self.accounts[token])

    def put_file(self, token: str, path: str, content: bytes) -> dict[str, Any]:
        return self.fs_for_token(token).put(path, content, now=self.clock())

    def delete_path(self, token: str, path: str) -> dict[str, Any] | None:
        return self.fs_for_token(token).delete(path)

    def signed_notification(self, app_secret: bytes, tokens: list[str]) -> tuple[bytes, dict[str, str]]:
        """The webhook POST Dropbox would send after changes in the accounts of ``tokens``: (body, headers)
        signed with the app secret (``X-Dropbox-Signature``), for tests of a webhook receiver."""
        accounts = [self.accounts[t] for t in tokens]
        body = json.dumps({"list_folder": {"accounts": [a.account_id for a in accounts]},
                           "delta": {"users": [a.uid for a in accounts]}}).encode()
        signature = hmac.new(app_secret, body, hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json", "X-Dropbox-Signature": signature}

    # ---- routes ----------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        meta, content_read, write = "files.metadata.read", "files.content.read", "files.content.write"
        return [
            Route("POST", "/users/get_current_account", self._api(self.current_account, "account_info.read")),
            Route("POST", "/files/list_folder", self._api(self.list_folder, meta)),
            Route("POST", "/files/list_folder/continue", self._api(self.list_continue, meta)),
            Route("POST", "/files/list_folder/get_latest_cursor", self._api(self.latest_cursor, meta)),
            Route("POST", "/files/get_metadata", self._api(self.get_metadata, meta)),
            Route("POST", "/files/upload", self._api(self.upload, write)),
            Route("POST", "/files/download", self._api(self.download, content_read)),
            Route("POST", "/files/delete_v2", self._api(self.delete, write)),
            Route("POST", "/files/list_folder/longpoll", self.longpoll, auth="none", counted=False),
            Route("POST", "/auth/token/revoke", self._api(self.revoke_token, None)),
        ]

    def _api(self, handler: Any, scope: str | None) -> Any:
        async def run(call: Call) -> web.StreamResponse:
            record = call.record
            if scope is not None and record is not None and scope not in record.scopes:
                raise route_error("missing_scope/", {".tag": "missing_scope", "required_scope": scope}, 401)
            return await handler(call)
        return run

    def _fs(self, call: Call) -> FileSystem:
        return self.fs_of(self.accounts[call.token or ""])

    async def _arg(self, call: Call, *, void: bool = False) -> dict[str, Any]:
        name = call.path.lstrip("/")
        try:
            raw = await read_body(call.request, 64 * 1024)
        except BodyTooLarge:
            raise bad_input(name, "request body too large") from None
        if void:
            if raw.strip() not in (b"", b"null"):
                raise bad_input(name, "request body: expected null, got value")
            return {}
        if "application/json" not in call.request.headers.get("Content-Type", ""):
            raise bad_input(name, 'Bad HTTP "Content-Type" header: expected "application/json"')
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            raise bad_input(name, "request body: could not decode input as JSON") from None
        if not isinstance(data, dict):
            raise bad_input(name, "request body: expected an object")
        return data

    @staticmethod
    def _path(route: str, value: Any, *, root_ok: bool = False) -> str:
        if value == "" and root_ok:
            return ""
        if not isinstance(value, str) or not value.startswith("/") or value.endswith("/") or "//" in value \
                or len(value) > 4096:
            raise bad_input(route, f"request body: path: {str(value)[:60]!r} did not match pattern "
                                   "'(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)|(id:.*)'")
        return value

    async def current_account(self, call: Call) -> web.StreamResponse:
        await self._arg(call, void=True)
        a = self.accounts[call.token or ""]
        return json_response({
            "account_id": a.account_id, "email": a.email, "email_verified": True, "disabled": False,
            "name": {"given_name": a.given, "surname": a.surname, "familiar_name": a.given,
                     "display_name": f"{a.given} {a.surname}", "abbreviated_name": a.given[0] + a.surname[0]},
            "country": "US", "locale": "en", "is_paired": False, "account_type": {".tag": "basic"},
            "root_info": {".tag": "user", "root_namespace_id": str(a.uid * 10), "home_namespace_id": str(a.uid * 10)},
        })

    def _listing_args(self, call: Call, body: dict[str, Any], limit: int = 2000) -> tuple[FileSystem, Listing]:
        route = call.path.lstrip("/")
        path = self._path(route, body.get("path"), root_ok=True)
        recursive, deleted = body.get("recursive", False), body.get("include_deleted", False)
        if not isinstance(recursive, bool) or not isinstance(deleted, bool):
            raise bad_input(route, "request body: recursive and include_deleted must be booleans")
        fs = self._fs(call)
        if path:
            entry = fs.entries.get(path.lower())
            if entry is None:
                raise path_not_found()
            if entry.kind != "folder":
                raise route_error("path/not_folder/", {".tag": "path", "path": {".tag": "not_folder"}})
        return fs, fs.start(path, recursive, deleted, limit)

    async def list_folder(self, call: Call) -> web.StreamResponse:
        body = await self._arg(call)
        limit = body.get("limit", 2000)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 2000:
            raise bad_input("files/list_folder", "request body: limit: must be between 1 and 2000")
        fs, listing = self._listing_args(call, body, limit)
        return self._page(fs, listing)

    def _page(self, fs: FileSystem, listing: Listing) -> web.StreamResponse:
        entries, cursor, more = fs.page(listing)
        return json_response({"entries": entries, "cursor": cursor, "has_more": more})

    def _decode(self, call: Call, cursor: Any) -> tuple[FileSystem, Listing]:
        fs = self._fs(call)
        try:
            return fs, fs.decode(cursor)
        except CursorInvalid as exc:
            raise bad_input(call.path.lstrip("/"), f"request body: cursor: {exc}") from None
        except CursorReset:
            raise route_error("reset/", {".tag": "reset"}) from None

    async def list_continue(self, call: Call) -> web.StreamResponse:
        fs, listing = self._decode(call, (await self._arg(call)).get("cursor"))
        return self._page(fs, listing)

    async def latest_cursor(self, call: Call) -> web.StreamResponse:
        fs, listing = self._listing_args(call, await self._arg(call))
        done = Listing(listing.path, listing.recursive, listing.include_deleted, fs.seq, None, listing.limit)
        return json_response({"cursor": fs.cursor(done)})

    async def get_metadata(self, call: Call) -> web.StreamResponse:
        path = self._path("files/get_metadata", (await self._arg(call)).get("path"))
        meta = self._fs(call).get(path)
        if meta is None:
            raise path_not_found()
        return json_response(meta)

    def _content_arg(self, call: Call) -> dict[str, Any]:
        route = call.path.lstrip("/")
        raw = call.request.headers.get("Dropbox-API-Arg")
        if raw is None:
            raise bad_input(route, 'Must provide HTTP header "Dropbox-API-Arg" or URL parameter "arg".')
        try:
            arg = json.loads(raw)
        except ValueError:
            raise bad_input(route, 'HTTP header "Dropbox-API-Arg": could not decode input as JSON') from None
        if not isinstance(arg, dict):
            raise bad_input(route, 'HTTP header "Dropbox-API-Arg": expected an object')
        return arg

    async def upload(self, call: Call) -> web.StreamResponse:
        arg = self._content_arg(call)
        path = self._path("files/upload", arg.get("path"))
        if call.request.headers.get("Content-Type", "").split(";")[0].strip() != "application/octet-stream":
            raise bad_input("files/upload", 'Bad HTTP "Content-Type" header: "application/octet-stream" expected')
        content = await read_body(call.request, self.max_body)
        fs, mode = self._fs(call), arg.get("mode", "add")
        tag = mode.get(".tag") if isinstance(mode, dict) else mode
        existing = fs.entries.get(path.lower())
        conflict = route_error("path/conflict/file/", {".tag": "path", "reason": {
            ".tag": "conflict", "conflict": {".tag": "file"}}, "upload_session_id": f"pid_upload_session:{fs.seq}"})
        if tag == "add":
            if existing is not None and existing.content != content:
                if not arg.get("autorename"):
                    raise conflict
                path = self._free_name(fs, path)
        elif tag == "update":
            rev = mode.get("update") if isinstance(mode, dict) else None
            if not isinstance(rev, str) or not rev:
                raise bad_input("files/upload", "request body: mode: update needs a rev")
            if existing is None or existing.kind != "file" or existing.rev != rev:
                raise conflict
        elif tag != "overwrite":
            raise bad_input("files/upload", f"request body: mode: unknown tag {str(tag)[:30]!r}")
        if existing is not None and existing.kind == "folder":
            raise route_error("path/conflict/folder/", {".tag": "path", "reason": {
                ".tag": "conflict", "conflict": {".tag": "folder"}}})
        if tag == "add" and existing is not None and existing.content == content:
            return json_response(existing.metadata())       # identical content: no new revision
        return json_response(fs.put(path, content, now=self.clock()))

    @staticmethod
    def _free_name(fs: FileSystem, path: str) -> str:
        stem, dot, ext = path.rpartition(".") if "." in path.rsplit("/", 1)[1] else (path, "", "")
        n = 1
        while f"{stem} ({n}){dot}{ext}".lower() in fs.entries:
            n += 1
        return f"{stem} ({n}){dot}{ext}"

    async def download(self, call: Call) -> web.StreamResponse:
        path = self._path("files/download", self._content_arg(call).get("path"))
        entry = self._fs(call).entries.get(path.lower())
        if entry is None or entry.kind != "file":
            raise path_not_found()
        return web.Response(body=entry.content, content_type="application/octet-stream",
                            headers={"Dropbox-API-Result": json.dumps(entry.metadata(), ensure_ascii=True)})

    async def delete(self, call: Call) -> web.StreamResponse:
        body = await self._arg(call)
        path = self._path("files/delete_v2", body.get("path"))
        fs = self._fs(call)
        entry = fs.entries.get(path.lower())
        if entry is None:
            raise path_not_found("path_lookup")
        parent_rev = body.get("parent_rev")
        if parent_rev is not None and (entry.kind != "file" or entry.rev != parent_rev):
            raise route_error("path_write/conflict/file/", {".tag": "path_write", "path_write": {
                ".tag": "conflict", "conflict": {".tag": "file"}}})
        return json_response({"metadata": fs.delete(path)})

    async def revoke_token(self, call: Call) -> web.StreamResponse:
        await self._arg(call, void=True)
        grant = self.oauth.grants.get(call.token or "")
        if grant is not None:
            self.oauth.revoke_grant(grant)
        else:
            self.tokens.revoke(call.token or "")
        return json_response(None)

    async def longpoll(self, call: Call) -> web.StreamResponse:
        if self.options.longpoll_refuses_auth and "Authorization" in call.request.headers:
            raise bad_input("files/list_folder/longpoll", 'Unexpected "Authorization" header: this route takes '
                                                          "no authentication")
        body = await self._arg(call)
        timeout = body.get("timeout", 30)
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 30 <= timeout <= 480:
            raise bad_input("files/list_folder/longpoll", "request body: timeout: must be between 30 and 480")
        fs, listing = self._longpoll_cursor(call, body.get("cursor"))
        if not fs.has_changes(listing):
            wait = min(float(timeout), self.options.longpoll_max_wait or float(timeout))
            changed = fs.changed
            self.longpoll_waiting.set()
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except TimeoutError:
                pass                      # no change within the timeout: the documented {"changes": false}
            finally:
                self.longpoll_waiting.clear()
        answer: dict[str, Any] = {"changes": fs.has_changes(listing)}
        if self.options.longpoll_backoff:
            answer["backoff"] = self.options.longpoll_backoff
        return json_response(answer)

    def _longpoll_cursor(self, call: Call, cursor: Any) -> tuple[FileSystem, Listing]:
        for fs in self.filesystems.values():        # no token here: the cursor names its account
            try:
                return fs, fs.decode(cursor)
            except CursorInvalid:
                continue
            except CursorReset:
                raise route_error("reset/", {".tag": "reset"}) from None
        raise bad_input("files/list_folder/longpoll", "request body: cursor: invalid cursor")

    # ---- the provider's refusals -----------------------------------------------------------------------
    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        route = call.path.lstrip("/")
        if status is TokenStatus.MISSING:
            return web.Response(status=400, content_type="text/plain",
                                text=f'Error in call to API function "{route}": Must provide HTTP header '
                                     '"Authorization" or URL parameter "authorization".')
        tag = "expired_access_token" if status is TokenStatus.EXPIRED else "invalid_access_token"
        return json_response({"error_summary": f"{tag}/..", "error": {".tag": tag}}, 401)

    def _too_many(self, call: Call, retry_after: int) -> web.StreamResponse:
        write = call.path in ("/files/upload", "/files/delete_v2")
        reason = "too_many_write_operations" if write and self.options.write_limit_reason else "too_many_requests"
        return json_response({"error_summary": f"{reason}/..", "error": {"reason": {".tag": reason},
                                                                          "retry_after": retry_after}},
                             429, headers={"Retry-After": str(retry_after)})

    def quotas(self, call: Call) -> list[Quota]:
        limit, window = (self.rate_limit.limit, self.rate_limit.window) if self.rate_limit else self.default_rate
        return [Quota(f"token:{call.token}", limit, window)] if call.token else []

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        return self._too_many(call, state.retry_after)

    def burst_limited(self, call: Call) -> web.StreamResponse:
        return self._too_many(call, self.faults.burst_retry_after)

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        if rng.random() < 0.5:
            return web.Response(status=500, content_type="text/plain", text="Internal Server Error")
        return web.Response(status=503, content_type="text/plain", text="Service Unavailable",
                            headers={"Retry-After": "1"})

    def not_found(self, call: Call) -> web.StreamResponse:
        return web.Response(status=404, content_type="text/plain",
                            text=f"Unknown API function: {call.path.lstrip('/')[:100]!r}")

    def too_large(self, call: Call) -> web.StreamResponse:
        return web.Response(status=413, content_type="text/plain", text="Request body too large")


