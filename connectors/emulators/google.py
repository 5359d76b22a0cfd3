"""Google emulator: the Gmail API v1 and the Drive API v3 on one server, plus Google's OAuth endpoint shapes
(reference: apis-messaging.md §1, apis-storage-dev.md §1).

One class serves both APIs; the registry keys pick which base URL `start()` advertises::

    EMULATORS["gmail"]         -> GmailEmulator        base http://127.0.0.1:PORT/gmail/v1
    EMULATORS["google_drive"]  -> GoogleDriveEmulator  base http://127.0.0.1:PORT/drive/v3

Either instance answers both `/gmail/v1/...` and `/drive/v3/...` (and, mounted by `mount()`, the OAuth
endpoints at the same origin, so `OAUTH.with_auth_base(emu.origin)` points at them), so one emulator can
stand behind a Gmail and a Drive app of the same Google account. Paths in `hits()` and the request log are
full paths (`/gmail/v1/users/me/profile`).

OAuth (the shared `AuthorizationServer` in Google's shapes; register a client with
`emu.oauth.register_client(id, secret, [redirect])`): `GET /o/oauth2/v2/auth`, `POST /token` (access tokens
`ya29.…` for 3599 s; no rotation: a refresh answer has no `refresh_token`; a dead refresh token is
`invalid_grant` "Token has been expired or revoked."), `POST /revoke` (token in the query or the form, no
client authentication, 400 invalid_token for an unknown one), `POST /device/code` (the device grant; Google's
limit to a few non-Gmail scopes is not enforced), `GET /tokeninfo?access_token=`, `GET /v1/userinfo` and
`/oauth2/v3/userinfo`.

Auth `Authorization: Bearer <t>`; a token's account derives from the grant's subject (OAuth-issued tokens)
or from the token itself. Scopes are checked per endpoint (403 insufficientPermissions). Quotas are
Google's: units per user per minute with the documented per-method costs (getProfile and labels 1,
messages.list/get 5, send 100; Drive calls 1), answered 403 userRateLimitExceeded (knob: 429
RESOURCE_EXHAUSTED). Google documents no Retry-After, so one is sent only with the `send_retry_after`
knob [unverified]; burst-fault answers always carry `burst_retry_after`. `set_rate_limit` replaces the unit
quotas with one request quota per token.

Data: per account, a mailbox (labels; messages with id, threadId, internalDate, historyId; a history log of
every change with increasing ids) and a Drive (folders and files with id, parents, modifiedTime, version; a
change log with increasing ids). Gmail `history.list` and Drive `changes.list` serve those logs (issue 6):
a `startHistoryId` older than the retained history (`history_retention` records, 0 keeps all) is Gmail's
404 (the client must resync); a Drive page token outside the change log is a 400. Drive push channels
(`POST /drive/v3/changes/watch`, `POST /drive/v3/channels/stop`; every change-log entry notifies the account's
channels) live in google_push.py, one `PushChannels` at `emu.push`. `PATCH files/{id}` updates
metadata; `delete_message`, `relabel_message`, `rename_file` and `remove_file` change data as another client
would, and enter the logs.

Errors: `{"error": {"code", "message", "errors": [{"message", "domain", "reason", ...}], "status"}}`::

    401 authError / required (UNAUTHENTICATED)   403 insufficientPermissions, forbidden (PERMISSION_DENIED)
    403 userRateLimitExceeded | 429 rateLimitExceeded (RESOURCE_EXHAUSTED)    400 badRequest, invalid,
    required (INVALID_ARGUMENT)    404 notFound (NOT_FOUND)    500 backendError, 503 UNAVAILABLE, 502 HTML
"""

from __future__ import annotations

import base64
import email
import email.errors
import email.policy
import hashlib
import json
import random
import re
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (Call, Emulator, Quota, Reply, Route, TokenRecord, TokenStatus, WindowState, decode_cursor,
                   encode_cursor, int_param, json_response, read_body)
from .google_data import (Account, Drive, DriveFile, Mailbox, Message, derive_account, generate_drive,
                          generate_mailbox, google_id, rfc3339)
from .google_push import ChannelError, PushChannels
from .oauth import AuthorizationServer, Dialect, OAuthServerOptions, Refusal

GMAIL, DRIVE = "/gmail/v1", "/drive/v3"
S_GMAIL = "https://www.googleapis.com/auth/gmail."
S_DRIVE = "https://www.googleapis.com/auth/drive"
FULL_MAIL = "https://mail.google.com/"
GMAIL_READ = (S_GMAIL + "readonly", S_GMAIL + "modify", S_GMAIL + "metadata", FULL_MAIL)
GMAIL_PROFILE = GMAIL_READ + (S_GMAIL + "compose",)
GMAIL_SEND = (S_GMAIL + "send", S_GMAIL + "compose", S_GMAIL + "modify", FULL_MAIL)
DRIVE_READ = (S_DRIVE, S_DRIVE + ".readonly", S_DRIVE + ".file", S_DRIVE + ".metadata.readonly",
              S_DRIVE + ".metadata", S_DRIVE + ".appdata")
DRIVE_WRITE = (S_DRIVE, S_DRIVE + ".file")
DEFAULT_SCOPES = (S_GMAIL + "readonly", S_GMAIL + "send", S_DRIVE + ".readonly", S_DRIVE + ".file",
                  "openid", "email", "profile")
SYSTEM_LABELS = ("INBOX", "SENT", "DRAFT", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT",
                 "CATEGORY_PERSONAL", "CATEGORY_UPDATES")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


# Google's endpoints, all re-rooted at the emulator's origin (accounts.google.com, oauth2.googleapis.com)
OAUTH_OPTIONS = dict(authorize_path="/o/oauth2/v2/auth", token_path="/token", device_path="/device/code",
                     revoke_path="/revoke", revoke_method="POST", verification_uri="https://www.google.com/device",
                     access_token_lifetime=3599.0, rotate_refresh_tokens=False, access_prefix="ya29.a0",
                     refresh_prefix="1//0g")
USERINFO_SCOPES = ("openid", "email", "profile", "https://www.googleapis.com/auth/userinfo.email",
                   "https://www.googleapis.com/auth/userinfo.profile")


class GoogleDialect(Dialect):
    """Google's token endpoint: ``token_type: Bearer``, no refresh_token in a refresh answer (no rotation),
    ``invalid_grant`` "Token has been expired or revoked.", and revocation with the token in the query or the
    form and no client authentication (400 invalid_token for a token it does not know)."""

    def __init__(self) -> None:
        self._issued: set[str] = set()

    def token_ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        body = {**body, "token_type": "Bearer"}
        refresh = body.get("refresh_token")
        if refresh in self._issued:
            del body["refresh_token"]       # a refresh answer: Google keeps the original refresh token
        elif refresh:
            self._issued.add(refresh)
        return super().token_ok(request, body)

    def token_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        if refusal.error == "invalid_grant" and refusal.native == "invalid_refresh_token":
            refusal = Refusal("invalid_grant", "Token has been expired or revoked.", status=refusal.status)
        return super().token_error(request, refusal)

    async def revocation_token(self, server: AuthorizationServer, request: web.Request) -> str | None:
        form = await server.form(request)
        token = request.query.get("token") or form.get("token")
        if not token or token not in server.grants:
            raise Refusal("invalid_token", "Token expired or revoked")
        return token


class GoogleOptions(BaseModel):
    """Knobs for facts the reference marks unverified or gives in two versions."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    gmail_units_per_user_minute: int = Field(6000, ge=1)      # quota page version B; version A said 15,000
    drive_queries_per_user_minute: int = Field(12000, ge=1)   # the older published Drive model
    rate_limit_status: Literal[403, 429] = 403
    send_retry_after: bool = False                            # [unverified]: none is documented
    messages_per_user: int = Field(120, ge=0, le=20000)
    files_per_user: int = Field(150, ge=0, le=20000)
    history_retention: int = Field(0, ge=0)                   # history records kept (0: all); older ids 404


def google_error(status: int, message: str, reason: str, domain: str = "global",
                 headers: dict[str, str] | None = None, **where: str) -> web.Response:
    """Google's error envelope: ``google_error(404, "File not found: x.", "notFound", location="fileId")``."""
    item = {"message": message, "domain": domain, "reason": reason}
    if where:
        item.update(where)
    body = {"error": {"code": status, "message": message, "errors": [item],
                      "status": STATUS_NAMES.get(status, "UNKNOWN")}}
    return json_response(body, status, headers)


def bad_value(name: str, message: str | None = None) -> Reply:
    return Reply(google_error(400, message or f"Invalid value for {name}", "invalid",
                              location=name, locationType="parameter"))


_DRIVE_TERM = re.compile(r"""^\s*(?:'(?P<parent>[^']+)'\s+in\s+parents|trashed\s*=\s*(?P<trashed>true|false)|
    mimeType\s*(?P<mop>=|!=)\s*'(?P<mime>[^']+)'|name\s+contains\s+'(?P<contains>[^']*)'|
    name\s*=\s*'(?P<name>[^']*)')\s*$""", re.X)


def drive_filter(q: str) -> list[Any]:
    """Predicates for a Drive `q` of terms joined by `and`; Reply(400) for anything else."""
    preds = []
    for term in re.split(r"\s+and\s+", q.strip()) if q.strip() else []:
        m = _DRIVE_TERM.match(term)
        if m is None:
            raise bad_value("q", "Invalid Value")
        g = m.groupdict()
        if g["parent"] is not None:
            preds.append(lambda f, p=g["parent"]: p in f.parents)
        elif g["trashed"] is not None:
            preds.append(lambda f, t=g["trashed"] == "true": f.trashed == t)
        elif g["mime"] is not None:
            preds.append(lambda f, mt=g["mime"], eq=g["mop"] == "=": (f.mime_type == mt) == eq)
        elif g["contains"] is not None:
            preds.append(lambda f, s=g["contains"].lower(): s in f.name.lower())
        else:
            preds.append(lambda f, s=g["name"]: f.name == s)
    return preds


def gmail_filter(q: str) -> list[Any]:
    """Predicates for the Gmail search terms the emulator knows: from:, to:, subject:, is:unread, words."""
    preds = []
    for term in q.split():
        key, _, value = term.partition(":")
        value = value.lower()
        if key == "from" and value:
            preds.append(lambda m, v=value: v in m.sender.lower())
        elif key == "to" and value:
            preds.append(lambda m, v=value: v in m.to.lower())
        elif key == "subject" and value:
            preds.append(lambda m, v=value: v in m.subject.lower())
        elif key in ("is", "label") and value:
            preds.append(lambda m, v=value.upper(): v in m.labels)
        else:
            preds.append(lambda m, v=term.lower(): v in m.subject.lower() or v in m.body.lower())
    return preds


def top_level_fields(fields: str) -> set[str]:
    """`user(displayName,emailAddress),storageQuota` -> {"user", "storageQuota"}."""
    names, depth, current = set(), 0, ""
    for ch in fields + ",":
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            if current.strip():
                names.add(current.strip().split("/")[0])
            current = ""
            continue
        if depth == 0 and ch not in "()":
            current += ch
    return names


# --- the emulator ------------------------------------------------------------------------------------


class GoogleEmulator(Emulator):
    """Gmail + Drive. Example: ``emu = GmailEmulator(tokens=["ya29.demo"], seed=1)`` (module docstring)."""

    service: ClassVar[str] = "gmail"
    api_prefix: ClassVar[str] = GMAIL
    prefixes = ("",)
    default_rate = (6000, 60.0)
    default_scopes = DEFAULT_SCOPES
    options_model = GoogleOptions
    fallback_auth = "none"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.accounts: dict[str, Account] = {}     # token -> account
        self.mailboxes: dict[str, Mailbox] = {}    # email -> mailbox
        self.drives: dict[str, Drive] = {}         # email -> drive
        self.units: dict[str, tuple[float, int]] = {}  # quota key -> (window start, units used)
        super().__init__(*args, **kwargs)
        # the emulator's own authorization server: `self.oauth.register_client(...)`, knobs in `self.oauth.options`
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS), dialect=GoogleDialect())
        self.push = PushChannels(self.clock)   # Drive changes.watch channels and their deliveries

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, allow_remote: bool = False) -> str:
        await super().start(host, port, allow_remote=allow_remote)
        self._base_url = self.origin + self.api_prefix
        return self._base_url

    async def stop(self) -> None:
        """Stop listening and close the push deliveries (undelivered notifications are dropped)."""
        try:
            await super().stop()
        finally:
            await self.push.close()

    def on_token_added(self, record: TokenRecord) -> None:
        account = derive_account(record.subject or record.token)
        self.accounts[record.token] = account

    def account(self, call: Call) -> Account:
        return self.accounts[call.token or ""]

    def mailbox(self, account: Account) -> Mailbox:
        if account.email not in self.mailboxes:
            self.mailboxes[account.email] = generate_mailbox(self.seed, account, self.options.messages_per_user)
        return self.mailboxes[account.email]

    def drive(self, account: Account) -> Drive:
        if account.email not in self.drives:
            drive = generate_drive(self.seed, account, self.options.files_per_user)
            drive.listeners.append(lambda: self.push.changed(account.email))
            self.drives[account.email] = drive
        return self.drives[account.email]

    # --- routes -------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        gmail_user = GMAIL + "/users/{userId}"
        return [
            Route("GET", gmail_user + "/profile", self._api(self.profile, 1, GMAIL_PROFILE)),
            Route("GET", gmail_user + "/labels", self._api(self.labels, 1, GMAIL_READ)),
            Route("GET", gmail_user + "/messages", self._api(self.list_messages, 5, GMAIL_READ)),
            Route("GET", gmail_user + "/messages/{id}", self._api(self.get_message, 5, GMAIL_READ)),
            Route("POST", gmail_user + "/messages/send", self._api(self.send_message, 100, GMAIL_SEND)),
            Route("GET", DRIVE + "/about", self._api(self.about, 1, DRIVE_READ)),
            Route("GET", DRIVE + "/files", self._api(self.list_files, 1, DRIVE_READ)),
            Route("GET", DRIVE + "/files/{fileId}", self._api(self.get_file, 1, DRIVE_READ)),
            Route("GET", DRIVE + "/changes/startPageToken", self._api(self.start_page_token, 1, DRIVE_READ)),
            Route("GET", DRIVE + "/changes", self._api(self.list_changes, 1, DRIVE_READ)),
            Route("PATCH", DRIVE + "/files/{fileId}", self._api(self.update_file, 1, DRIVE_WRITE)),
            Route("POST", DRIVE + "/changes/watch", self._api(self.watch_changes, 1, DRIVE_READ)),
            Route("POST", DRIVE + "/channels/stop", self._api(self.stop_channel, 1, DRIVE_READ)),
            Route("GET", gmail_user + "/history", self._api(self.list_history, 2, GMAIL_READ)),
            # OpenID Connect userinfo (openidconnect.googleapis.com/v1, www.googleapis.com/oauth2/v3)
            Route("GET", "/v1/userinfo", self._api(self.userinfo, 0, USERINFO_SCOPES)),
            Route("GET", "/oauth2/v3/userinfo", self._api(self.userinfo, 0, USERINFO_SCOPES)),
            Route("GET", "/tokeninfo", self.tokeninfo, auth="none", counted=False),
        ]

    def _api(self, handler: Any, cost: int, scopes: tuple[str, ...]) -> Any:
        """Wrap a handler with Google's scope check and its per-user unit quota (cost units a call)."""
        async def run(call: Call) -> web.StreamResponse:
            record = call.record
            if record is not None and not set(record.scopes) & set(scopes):
                return google_error(403, "Request had insufficient authentication scopes.",
                                    "insufficientPermissions")
            if self.rate_limit is None and cost:
                refusal = self._spend(call, cost)
                if refusal is not None:
                    return refusal
            if call.request.path.startswith(GMAIL):
                self._check_user(call)
            return await handler(call)
        return run

    def _spend(self, call: Call, cost: int) -> web.StreamResponse | None:
        gmail = call.request.path.startswith(GMAIL)
        limit = self.options.gmail_units_per_user_minute if gmail else self.options.drive_queries_per_user_minute
        key = ("gmail:" if gmail else "drive:") + self.account(call).email
        now = self.clock()
        start = now - now % 60
        saved_start, used = self.units.get(key, (start, 0))
        used = used if saved_start == start else 0
        if used + cost > limit:
            return self.rate_limited(call, WindowState(limit, used, start + 60, now, False))
        self.units[key] = (start, used + cost)
        return None

    def _check_user(self, call: Call) -> None:
        user = call.request.match_info.get("userId", "me")
        if user not in ("me", self.account(call).email):
            raise Reply(google_error(403, f"Delegation denied for {self.account(call).email}", "forbidden"))

    # --- OpenID Connect ------------------------------------------------------------------------------

    async def userinfo(self, call: Call) -> web.StreamResponse:
        account = self.account(call)
        first, _, last = account.name.partition(" ")
        return json_response({"sub": account.permission_id, "email": account.email, "email_verified": True,
                              "name": account.name, "given_name": first, "family_name": last,
                              "picture": f"https://lh3.googleusercontent.com/a/{account.permission_id}"})

    async def tokeninfo(self, call: Call) -> web.StreamResponse:
        """`GET /tokeninfo?access_token=...`: what a token is for (the token is in the query, no header)."""
        token = call.params.get("access_token", "")
        record = self.tokens.get(token) if token else None
        if record is None or self.tokens.status(token, self.clock()) is not TokenStatus.VALID:
            return json_response({"error": "invalid_token", "error_description": "Invalid Value"}, 400)
        account = derive_account(record.subject or record.token)
        body = {"azp": "emulator", "aud": "emulator", "sub": account.permission_id, "email": account.email,
                "scope": " ".join(record.scopes), "email_verified": "true", "access_type": "offline"}
        if record.expires_at is not None:
            body["exp"] = str(int(record.expires_at))
            body["expires_in"] = str(max(0, int(record.expires_at - self.clock())))
        return json_response(body)

    # --- Gmail ---------------------------------------------------------------------------------------

    async def profile(self, call: Call) -> web.StreamResponse:
        account = self.account(call)
        box = self.mailbox(account)
        return json_response({"emailAddress": account.email, "messagesTotal": len(box.messages),
                              "threadsTotal": len({m.thread_id for m in box.messages}),
                              "historyId": str(box.next_history)})

    async def labels(self, call: Call) -> web.StreamResponse:
        labels = [{"id": name, "name": name, "type": "system"} for name in SYSTEM_LABELS]
        return json_response({"labels": labels})

    def _page(self, call: Call, items: list[Any], size_param: str, default: int, high: int,
              kind: str) -> tuple[list[Any], str | None]:
        size = int_param(call.params.get(size_param), default, 1, high)
        token = call.params.get("pageToken")
        start = 0
        if token:
            offset = decode_cursor(token, kind + ":")
            if offset is None or not offset.isdigit() or int(offset) > len(items):
                raise bad_value("pageToken", "Invalid pageToken")
            start = int(offset)
        end = start + size
        return items[start:end], encode_cursor(f"{kind}:{end}") if end < len(items) else None

    async def list_messages(self, call: Call) -> web.StreamResponse:
        box = self.mailbox(self.account(call))
        wanted = set(call.request.query.getall("labelIds", []))
        preds = gmail_filter(call.params.get("q", ""))
        found = [m for m in reversed(box.messages) if wanted <= set(m.labels) and all(p(m) for p in preds)
                 and ("TRASH" not in m.labels or call.params.get("includeSpamTrash") == "true")]
        page, token = self._page(call, found, "maxResults", 100, 500, "messages")
        body: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if token:
            body["nextPageToken"] = token
        return json_response(body)

    def _message(self, call: Call) -> Message:
        box = self.mailbox(self.account(call))
        wanted = call.request.match_info["id"]
        found = next((m for m in box.messages if m.id == wanted), None)
        if found is None:
            raise Reply(google_error(404, "Requested entity was not found.", "notFound"))
        return found

    async def get_message(self, call: Call) -> web.StreamResponse:
        msg = self._message(call)
        fmt = call.params.get("format", "full")
        if fmt not in ("minimal", "full", "raw", "metadata"):
            raise bad_value("format")
        body: dict[str, Any] = {"id": msg.id, "threadId": msg.thread_id, "labelIds": msg.labels,
                                "snippet": msg.snippet, "historyId": str(msg.history_id),
                                "internalDate": str(msg.internal_date), "sizeEstimate": 400 + len(msg.body)}
        when = datetime.fromtimestamp(msg.internal_date / 1000, timezone.utc)
        headers = [{"name": "From", "value": msg.sender}, {"name": "To", "value": msg.to},
                   {"name": "Subject", "value": msg.subject},
                   {"name": "Date", "value": when.strftime("%a, %d %b %Y %H:%M:%S +0000")}]
        data = base64.urlsafe_b64encode(msg.body.encode()).decode().rstrip("=")
        if fmt == "raw":
            text = "".join(f"{h['name']}: {h['value']}\r\n" for h in headers) + "\r\n" + msg.body
            body["raw"] = base64.urlsafe_b64encode(text.encode()).decode()
        elif fmt in ("full", "metadata"):
            body["payload"] = {"partId": "", "mimeType": "text/plain", "filename": "", "headers": headers,
                               "body": {"size": len(msg.body)} | ({"data": data} if fmt == "full" else {})}
        return json_response(body)

    async def send_message(self, call: Call) -> web.StreamResponse:
        raw_body = await self._json(call)
        raw, thread = raw_body.get("raw"), raw_body.get("threadId")
        if not isinstance(raw, str) or not raw:
            raise Reply(google_error(400, "'raw' RFC822 payload message string or uploading message via "
                                          "/upload/* URL required", "invalidArgument"))
        try:
            parsed = email.message_from_bytes(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)),
                                              policy=email.policy.default)
            to, subject = str(parsed.get("To") or ""), str(parsed.get("Subject") or "")
            plain = parsed.get_body(("plain",))
            text = str(plain.get_content()) if plain is not None else ""
        except (ValueError, LookupError, email.errors.MessageError):   # binascii.Error is a ValueError
            raise Reply(google_error(400, "Invalid value for ByteString", "invalidArgument")) from None
        if not to:
            raise Reply(google_error(400, "Invalid To header", "invalidArgument"))
        account = self.account(call)
        box = self.mailbox(account)
        now = int(self.clock())
        number = len(box.messages)
        msg = Message(google_id("sent", account.email, number, now, length=16).lower(),
                      thread if isinstance(thread, str) and thread else google_id("t", account.email, number,
                                                                                   length=16).lower(),
                      now * 1000, 0, ["SENT"], account.email, to, subject, text)
        box.messages.append(msg)
        box.record("messageAdded", msg)
        return json_response({"id": msg.id, "threadId": msg.thread_id, "labelIds": msg.labels})

    async def _json(self, call: Call) -> dict[str, Any]:
        try:
            value = json.loads(await read_body(call.request, self.max_body) or b"null")
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise Reply(google_error(400, "Invalid JSON payload received.", "parseError"))
        return value

    # --- Drive ---------------------------------------------------------------------------------------

    async def about(self, call: Call) -> web.StreamResponse:
        fields = call.params.get("fields")
        if not fields:
            raise Reply(google_error(400, "The 'fields' parameter is required for this method.", "required",
                                     location="fields", locationType="parameter"))
        account = self.account(call)
        drive = self.drive(account)
        used = sum(f.size or 0 for f in drive.files.values())
        full = {"kind": "drive#about",
                "user": {"kind": "drive#user", "displayName": account.name, "emailAddress": account.email,
                         "permissionId": account.permission_id, "me": True},
                "storageQuota": {"limit": str(15 * 1024**3), "usage": str(used), "usageInDrive": str(used)}}
        wanted = top_level_fields(fields)
        return json_response(full if "*" in wanted else {k: v for k, v in full.items() if k in wanted})

    def _file_json(self, item: DriveFile) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "drive#file", "id": item.id, "name": item.name, "mimeType": item.mime_type,
                               "parents": item.parents, "trashed": item.trashed, "version": str(item.version),
                               "createdTime": rfc3339(item.created), "modifiedTime": rfc3339(item.modified)}
        if item.size is not None:
            out["size"] = str(item.size)
            out["md5Checksum"] = hashlib.md5(f"{item.id}:{item.version}".encode()).hexdigest()
        return out

    async def list_files(self, call: Call) -> web.StreamResponse:
        drive = self.drive(self.account(call))
        preds = drive_filter(call.params.get("q", ""))
        found = [f for f in drive.files.values() if all(p(f) for p in preds)]
        order = call.params.get("orderBy", "modifiedTime desc")
        for key in reversed([k.strip() for k in order.split(",") if k.strip()]):
            name, _, direction = key.partition(" ")
            attr = {"modifiedTime": "modified", "createdTime": "created", "name": "name",
                    "folder": "mime_type"}.get(name)
            if attr is None or direction not in ("", "desc"):
                raise bad_value("orderBy", f"Invalid field selection {name}")
            found.sort(key=lambda f, a=attr: (getattr(f, a), f.id), reverse=direction == "desc")
        page, token = self._page(call, found, "pageSize", 100, 1000, "files")
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False,
                                "files": [self._file_json(f) for f in page]}
        if token:
            body["nextPageToken"] = token
        return json_response(body)

    async def get_file(self, call: Call) -> web.StreamResponse:
        drive = self.drive(self.account(call))
        file_id = call.request.match_info["fileId"]
        item = drive.files.get(file_id)
        if item is None:
            raise Reply(google_error(404, f"File not found: {file_id[:64]}.", "notFound", location="fileId",
                                     locationType="parameter"))
        return json_response(self._file_json(item))

    async def start_page_token(self, call: Call) -> web.StreamResponse:
        drive = self.drive(self.account(call))
        return json_response({"kind": "drive#startPageToken", "startPageToken": str(len(drive.changes) + 1)})

    # --- delta logs (issue 6) -----------------------------------------------------------------------

    async def list_history(self, call: Call) -> web.StreamResponse:
        """Gmail `users.history.list`: records after `startHistoryId`, oldest first; 404 when it is too old."""
        box = self.mailbox(self.account(call))
        raw = call.params.get("startHistoryId")
        if not raw:
            raise Reply(google_error(400, "Required parameter: startHistoryId", "required",
                                     location="startHistoryId", locationType="parameter"))
        if not str(raw).isdigit():
            raise bad_value("startHistoryId")
        start = int(raw)
        keep = self.options.history_retention
        dropped = box.history[:-keep] if keep and len(box.history) > keep else []
        kept = box.history[len(dropped):]
        if (dropped and start < dropped[-1]["id"]) or start > box.next_history:   # records after it are gone
            raise Reply(google_error(404, "Requested entity was not found.", "notFound"))
        types = set(call.request.query.getall("historyTypes", [])) or {"messageAdded", "messageDeleted",
                                                                       "labelAdded", "labelRemoved"}
        found = [h for h in kept if h["id"] > start and h["type"] in types]
        page, token = self._page(call, found, "maxResults", 100, 500, "history")
        by_id = {m.id: m for m in box.messages}
        body: dict[str, Any] = {"historyId": str(box.next_history)}
        if page:
            body["history"] = [self._history_json(h, by_id) for h in page]
        if token:
            body["nextPageToken"] = token
        return json_response(body)

    @staticmethod
    def _history_json(h: dict[str, Any], by_id: dict[str, Message]) -> dict[str, Any]:
        msg = by_id.get(h["messageId"])
        brief = {"id": h["messageId"], "threadId": msg.thread_id if msg else h.get("threadId", ""),
                 "labelIds": h["labelIds"]}
        entry: dict[str, Any] = {"id": str(h["id"]), "messages": [brief]}
        key = {"messageAdded": "messagesAdded", "messageDeleted": "messagesDeleted", "labelAdded": "labelsAdded",
               "labelRemoved": "labelsRemoved"}[h["type"]]
        item: dict[str, Any] = {"message": brief}
        if h["type"] in ("labelAdded", "labelRemoved"):
            item["labelIds"] = h.get("changed", [])
        entry[key] = [item]
        return entry

    def delete_message(self, email_address: str, message_id: str) -> None:
        """Another client deletes a message for good: it leaves the mailbox and enters the history."""
        box = self.mailboxes[email_address]
        msg = next(m for m in box.messages if m.id == message_id)
        box.messages.remove(msg)
        box.record("messageDeleted", msg)
        box.history[-1]["threadId"] = msg.thread_id

    def relabel_message(self, email_address: str, message_id: str, add: list[str], remove: list[str]) -> None:
        """Another client changes a message's labels (one history record per direction, as Gmail's)."""
        msg = next(m for m in self.mailboxes[email_address].messages if m.id == message_id)
        if add:
            msg.labels = msg.labels + [x for x in add if x not in msg.labels]
            self.mailboxes[email_address].record("labelAdded", msg)
            self.mailboxes[email_address].history[-1]["changed"] = list(add)
        if remove:
            msg.labels = [x for x in msg.labels if x not in remove]
            self.mailboxes[email_address].record("labelRemoved", msg)
            self.mailboxes[email_address].history[-1]["changed"] = list(remove)

    async def list_changes(self, call: Call) -> web.StreamResponse:
        """Drive `changes.list` from a page token (a position in the change log)."""
        drive = self.drive(self.account(call))
        start = self._change_position(call, drive)
        size = int_param(call.params.get("pageSize"), 100, 1, 1000)
        page = drive.changes[start:start + size]
        changes = []
        for c in page:
            item = drive.files.get(c["fileId"])
            change: dict[str, Any] = {"kind": "drive#change", "changeType": "file", "fileId": c["fileId"],
                                      "removed": c["removed"] or item is None, "time": rfc3339(c["time"])}
            if not change["removed"]:
                change["file"] = self._file_json(item)
            changes.append(change)
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": changes}
        if start + size < len(drive.changes):
            body["nextPageToken"] = str(start + size + 1)
        else:
            body["newStartPageToken"] = str(len(drive.changes) + 1)
        return json_response(body)

    @staticmethod
    def _change_position(call: Call, drive: Drive) -> int:
        """The change-log index a `pageToken` names; 400 when it is outside the log."""
        token = call.params.get("pageToken", "")
        if not token.isdigit() or not 1 <= int(token) <= len(drive.changes) + 1:
            raise Reply(google_error(400, f"Invalid Value: pageToken {token[:40]}", "invalid",
                                     location="pageToken", locationType="parameter"))
        return int(token) - 1

    async def watch_changes(self, call: Call) -> web.StreamResponse:
        """Drive `changes.watch`: open a push channel on the account's changes (google_push.py)."""
        account = self.account(call)
        position = self._change_position(call, self.drive(account))
        body = await self._json(call)
        uri = f"{self.origin}{DRIVE}/changes?alt=json&pageToken={position + 1}"
        try:
            channel = self.push.register(account.email, body, uri)
        except ChannelError as e:
            raise Reply(google_error(e.status, e.message, e.reason, domain=e.domain, **e.where)) from None
        return json_response(channel.resource())

    async def stop_channel(self, call: Call) -> web.StreamResponse:
        """Drive `channels.stop`: 204, or 404 for a channel this account does not have live."""
        try:
            self.push.stop(self.account(call).email, await self._json(call))
        except ChannelError as e:
            raise Reply(google_error(e.status, e.message, e.reason, domain=e.domain, **e.where)) from None
        return web.Response(status=204)

    async def update_file(self, call: Call) -> web.StreamResponse:
        """Drive `files.update` of metadata: name, description, starred, trashed."""
        drive = self.drive(self.account(call))
        item = drive.files.get(call.request.match_info["fileId"])
        if item is None:
            raise Reply(google_error(404, "File not found.", "notFound", location="fileId",
                                     locationType="parameter"))
        body = await self._json(call)
        unknown = set(body) - {"name", "description", "starred", "trashed"}
        if unknown:
            raise bad_value(sorted(unknown)[0], f"Field {sorted(unknown)[0]} is not writable")
        if "name" in body and (not isinstance(body["name"], str) or not body["name"]):
            raise bad_value("name")
        if "trashed" in body and not isinstance(body["trashed"], bool):
            raise bad_value("trashed")
        item.name = body.get("name", item.name)
        item.trashed = body.get("trashed", item.trashed)
        item.version += 1
        item.modified = max(self.clock(), item.modified + 0.001)
        drive.record(item, item.modified)
        return json_response(self._file_json(item))

    def rename_file(self, email_address: str, file_id: str, name: str) -> None:
        """Another client renames a file (a new version, a change)."""
        drive = self.drives[email_address]
        item = drive.files[file_id]
        item.name, item.version = name, item.version + 1
        item.modified = max(self.clock(), item.modified + 0.001)
        drive.record(item, item.modified)

    def remove_file(self, email_address: str, file_id: str) -> None:
        """Another client deletes a file for good: a `removed` change."""
        drive = self.drives[email_address]
        item = drive.files.pop(file_id)
        drive.record(item, self.clock(), removed=True)

    # --- dialect hooks -------------------------------------------------------------------------------

    def quotas(self, call: Call) -> list[Quota]:
        # Google's own quotas are the unit windows of `_api`; a request quota only when one was set
        return super().quotas(call) if self.rate_limit is not None else []

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        challenge = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
        if status is TokenStatus.MISSING:
            return google_error(401, "Request is missing required authentication credential. Expected OAuth 2 "
                                     "access token, login cookie or other valid authentication credential.",
                                "required", headers=challenge, location="Authorization", locationType="header")
        challenge["WWW-Authenticate"] += ', error="invalid_token"'
        return google_error(401, "Invalid Credentials", "authError", headers=challenge, location="Authorization",
                            locationType="header")

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        headers = {"Retry-After": str(state.retry_after)} if self.options.send_retry_after else None
        if self.options.rate_limit_status == 429:
            return google_error(429, "Resource has been exhausted (e.g. check quota).", "rateLimitExceeded",
                                headers=headers)
        return google_error(403, "User-rate limit exceeded.", "userRateLimitExceeded", domain="usageLimits",
                            headers=headers)

    def burst_limited(self, call: Call) -> web.StreamResponse:
        return google_error(429, "Too many concurrent requests for user.", "rateLimitExceeded",
                            domain="usageLimits", headers={"Retry-After": str(self.faults.burst_retry_after)})

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        kind = rng.choice((500, 502, 503))
        if kind == 500:
            return google_error(500, "Backend Error", "backendError")
        if kind == 503:
            return google_error(503, "The service is currently unavailable.", "backendError")
        return web.Response(status=502, content_type="text/html",
                            text="<!DOCTYPE html><html><title>Error 502 (Server Error)!!1</title><p><b>502.</b> "
                                 "That's an error.</p><p>The server encountered a temporary error.</p></html>")

    def not_found(self, call: Call) -> web.StreamResponse:
        return google_error(404, "Requested entity was not found.", "notFound")

    def too_large(self, call: Call) -> web.StreamResponse:
        return google_error(413, "Request payload size exceeds the limit.", "uploadTooLarge")


class GmailEmulator(GoogleEmulator):
    """The Google emulator advertising the Gmail base URL (`EMULATORS["gmail"]`)."""

    service = "gmail"
    api_prefix = GMAIL


class GoogleDriveEmulator(GoogleEmulator):
    """The Google emulator advertising the Drive base URL (`EMULATORS["google_drive"]`)."""

    service = "google_drive"
    api_prefix = DRIVE
