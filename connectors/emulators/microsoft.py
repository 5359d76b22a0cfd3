"""Microsoft Graph emulator: /v1.0 with the user, Outlook mail, OneDrive and Teams, plus the identity platform's
endpoint shapes (reference: apis-messaging.md §2 and §5, apis-storage-dev.md §3).

One class serves all of Graph; the registry keys only name whose limits apply by default::

    EMULATORS["outlook"]  -> OutlookEmulator    10,000 requests per 10 minutes per mailbox
    EMULATORS["onedrive"] -> OneDriveEmulator   1,200 resource units per minute (GET 1, listing 2, write 2)
    EMULATORS["teams"]    -> TeamsEmulator      30 requests per second ("other GET", per app per tenant)

Base URL `http://127.0.0.1:PORT/v1.0`. The OAuth endpoints (`/{tenant}/oauth2/v2.0/authorize|token|devicecode`)
are added by `mount()` at the same origin, so `OAUTH.for_tenant(t).with_auth_base(emu.origin)` points at them:
any tenant is accepted; access tokens live 4,500 s (the 75-minute average of Entra's random 60-90); refresh
tokens rotate and the old one keeps working; errors carry AADSTS codes; there is no revocation endpoint, and
`POST /v1.0/me/revokeSignInSessions` kills every grant of the user. Not emulated: Outlook's 4 concurrent
requests per mailbox, and `authorization_declined` (the shared server answers RFC 8628's `access_denied`).
Auth `Authorization: Bearer <t>`; the user derives from the grant's subject (OAuth-issued tokens) or the
token. Permissions are checked per endpoint group (403 ErrorAccessDenied / accessDenied / Forbidden).

Throttling: 429 with `Retry-After` (whole seconds; knob `fractional_retry_after` sends e.g. "2.128") and
`{"error":{"code":"TooManyRequests"|"activityLimitReached","message",...,"innerError":{...}}}`; 5xx faults are
503 serviceNotAvailable with Retry-After, 504 GatewayTimeout, 500 generalException. Collections page with
`@odata.nextLink` (absolute, `$skiptoken`); `$top` bounds per endpoint as documented.

Data per user: mail folders and messages (id, lastModifiedDateTime, changeKey, parentFolderId), a drive
(root, folders, files with eTag/cTag, lastModifiedDateTime, parentReference), joined teams with channels and
chatMessages (id = epoch ms, lastModifiedDateTime), and one change log (`changes`: seq, resource, id,
changeType) that delta endpoints (issue 6) can serve.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, Call, Emulator, Quota, Reply, Route, TokenRecord,
                   TokenStatus, WindowState, decode_cursor, digest_int, encode_cursor, json_response, pick,
                   read_body, seeded)
from .oauth import AuthorizationServer, Dialect, OAuthServerOptions, Refusal

DATA_EPOCH = 1672531200        # 2023-01-01T00:00:00Z
HOUR = 3600
MAIL_READ = ("Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite")
MAIL_SEND = ("Mail.Send",)
FILES_READ = ("Files.Read", "Files.ReadWrite", "Files.Read.All", "Files.ReadWrite.All", "Sites.ReadWrite.All")
TEAMS_READ = ("Team.ReadBasic.All", "TeamSettings.Read.All", "Group.Read.All", "Group.ReadWrite.All")
CHANNELS_READ = ("Channel.ReadBasic.All", "ChannelSettings.Read.All", "Group.Read.All", "Group.ReadWrite.All")
CHANNEL_MESSAGES = ("ChannelMessage.Read.All", "Group.Read.All", "Group.ReadWrite.All")
CHANNEL_SEND = ("ChannelMessage.Send", "Group.ReadWrite.All")
USER_READ = ("User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "Directory.Read.All")
DEFAULT_SCOPES = ("User.Read", "Mail.Read", "Mail.Send", "Files.ReadWrite", "Team.ReadBasic.All",
                  "Channel.ReadBasic.All", "ChannelMessage.Read.All", "ChannelMessage.Send", "offline_access")
GRAPH_APP = "00000003-0000-0000-c000-000000000000"
FOLDERS = (("inbox", "Inbox"), ("sentitems", "Sent Items"), ("drafts", "Drafts"), ("deleteditems", "Deleted Items"))
MIME = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "pdf": "application/pdf",
        "txt": "text/plain", "png": "image/png", "xlsx": "application/vnd.openxmlformats-officedocument."
                                                         "spreadsheetml.sheet"}


# login.microsoftonline.com/{tenant}/oauth2/v2.0/..., re-rooted at the emulator's origin; any tenant is accepted
OAUTH_OPTIONS = dict(authorize_path="/{tenant}/oauth2/v2.0/authorize", token_path="/{tenant}/oauth2/v2.0/token",
                     device_path="/{tenant}/oauth2/v2.0/devicecode", revoke_path=None,
                     verification_uri="https://microsoft.com/devicelogin", access_token_lifetime=4500.0,
                     rotate_refresh_tokens=True, old_refresh_token_survives_rotation=True,
                     access_prefix="eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.", refresh_prefix="0.AXkA")
# RFC 6749 error -> the AADSTS code Microsoft puts in error_codes and the description [V shape; codes U]
AADSTS = {"invalid_refresh_token": (700082, "The refresh token has expired due to inactivity."),
          "invalid_code_verifier": (501481, "The Code_Verifier does not match the code_challenge supplied in "
                                            "the authorization request."),
          "bad_redirect_uri": (50148, "The redirect_uri doesn't match the one in the authorization request."),
          "invalid_grant": (70008, "The provided authorization code or refresh token has expired due to "
                                   "inactivity."),
          "invalid_client": (7000215, "Invalid client secret provided."),
          "authorization_pending": (70016, "OAuth 2.0 device flow error. Authorization is pending."),
          "slow_down": (70016, "OAuth 2.0 device flow error. Polling too frequently."),
          "expired_token": (70019, "Verification code expired."),
          "access_denied": (70000, "The user declined the authorization request.")}


class MicrosoftDialect(Dialect):
    """The identity platform's token answers: ``token_type: Bearer`` with ``ext_expires_in``, and errors as
    ``{"error", "error_description": "AADSTS…: …\\r\\nTrace ID: …", "error_codes", "timestamp", "trace_id",
    "correlation_id"}``."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def token_ok(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        extra = {"ext_expires_in": body["expires_in"]} if "expires_in" in body else {}
        return super().token_ok(request, {**body, "token_type": "Bearer", **extra})

    def token_error(self, request: web.Request, refusal: Refusal) -> web.Response:
        number, text = AADSTS.get(refusal.native or "", AADSTS.get(refusal.error, (90000, refusal.description)))
        trace = guid("trace", refusal.error, self.clock())
        body = {"error": refusal.error, "error_description": f"AADSTS{number}: {text}\r\nTrace ID: {trace}\r\n"
                f"Correlation ID: {trace}\r\nTimestamp: {iso(self.clock())}", "error_codes": [number],
                "timestamp": iso(self.clock()), "trace_id": trace, "correlation_id": trace}
        return json_response(body, refusal.status, {"Cache-Control": "no-store"})


class GraphOptions(BaseModel):
    """Knobs for facts the reference marks unverified or that tests want to vary."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    fractional_retry_after: bool = False        # Graph may send "2.128" [V: throttling sample]
    messages_per_user: int = Field(60, ge=0, le=20000)
    drive_items_per_user: int = Field(80, ge=0, le=20000)
    teams_per_user: int = Field(3, ge=0, le=50)
    channels_per_team: int = Field(3, ge=1, le=50)
    messages_per_channel: int = Field(45, ge=0, le=5000)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def guid(*parts: object) -> str:
    return str(uuid.UUID(int=digest_int("guid", *parts) << 64 | digest_int("guid2", *parts)))


def graph_id(*parts: object) -> str:
    """An opaque Graph-style id (mail ids are long base64 strings)."""
    raw = f"{digest_int('id', *parts):016x}{digest_int('id2', *parts):016x}"
    return "AAMkAG" + raw.upper()


# --- data ---------------------------------------------------------------------------------------------


@dataclass
class User:
    id: str
    name: str
    upn: str

    def json(self) -> dict[str, Any]:
        first, last = self.name.split(" ", 1)
        return {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity", "id": self.id,
                "displayName": self.name, "userPrincipalName": self.upn, "mail": self.upn, "givenName": first,
                "surname": last, "jobTitle": None, "businessPhones": [], "mobilePhone": None,
                "officeLocation": None, "preferredLanguage": "en-US"}


@dataclass
class Tenant:
    """One user's Graph world: mail, drive, teams, and the change log."""

    user: User
    messages: list[dict[str, Any]] = field(default_factory=list)        # newest last
    items: dict[str, dict[str, Any]] = field(default_factory=dict)      # driveItem id -> item
    drive_id: str = ""
    root_id: str = ""
    teams: list[dict[str, Any]] = field(default_factory=list)
    channels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)       # team id -> channels
    channel_messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # channel id -> messages
    changes: list[dict[str, Any]] = field(default_factory=list)

    def record(self, resource: str, item_id: str, change: str, when: float) -> None:
        self.changes.append({"seq": len(self.changes) + 1, "resource": resource, "id": item_id,
                             "changeType": change, "time": when})


def derive_user(subject: str) -> User:
    h = digest_int("graph-user", subject)
    first, last = pick(FIRST_NAMES, h), pick(LAST_NAMES, h >> 8)
    return User(guid("user", subject), f"{first} {last}", f"{first.lower()}.{last.lower()}{(h >> 16) % 100}"
                                                           f"@contoso.example")


def mail_message(user: User, n: int, when: float, folder: str, sender: str, subject: str, text: str,
                 to: list[str]) -> dict[str, Any]:
    mid = graph_id("msg", user.id, n, when)
    change_key = f"CQAAABYAAA{digest_int('ck', mid) % 10**8:08d}"
    return {"@odata.etag": f'W/"{change_key}"', "id": mid, "createdDateTime": iso(when),
            "lastModifiedDateTime": iso(when), "changeKey": change_key, "receivedDateTime": iso(when),
            "sentDateTime": iso(when), "subject": subject, "bodyPreview": text[:255],
            "importance": "normal", "parentFolderId": folder, "conversationId": graph_id("conv", user.id, n // 3),
            "isRead": n % 4 != 0, "hasAttachments": False, "body": {"contentType": "text", "content": text},
            "from": {"emailAddress": {"name": sender.split("@")[0].title(), "address": sender}},
            "sender": {"emailAddress": {"name": sender.split("@")[0].title(), "address": sender}},
            "toRecipients": [{"emailAddress": {"name": a.split("@")[0].title(), "address": a}} for a in to]}


def generate(seed: int, user: User, opts: GraphOptions) -> Tenant:
    rng = seeded(seed, "graph", user.id)
    world = Tenant(user)
    for n in range(opts.messages_per_user):
        when = DATA_EPOCH + n * HOUR + rng.randrange(HOUR)
        sent = n % 6 == 5
        other = f"{rng.choice(FIRST_NAMES).lower()}@{rng.choice(NOUNS)}.example"
        msg = mail_message(user, n, when, "sentitems" if sent else "inbox", user.upn if sent else other,
                           f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS)} report #{n}",
                           f"Hi, the {rng.choice(NOUNS)} numbers for week {n} are in.", [other if sent else user.upn])
        world.messages.append(msg)
        world.record("messages", msg["id"], "created", when)
    world.drive_id = "b!" + graph_id("drive", user.id)[6:]
    world.root_id = "01" + graph_id("root", user.id)[6:24]
    root = {"id": world.root_id, "name": "root", "root": {}, "folder": {"childCount": 0},
            "createdDateTime": iso(DATA_EPOCH), "lastModifiedDateTime": iso(DATA_EPOCH), "size": 0,
            "parentReference": {"driveId": world.drive_id, "driveType": "business"}}
    world.items[world.root_id] = root
    folders = [world.root_id]
    for n in range(opts.drive_items_per_user):
        created = DATA_EPOCH + n * HOUR + rng.randrange(HOUR)
        modified = created + rng.randrange(60 * 24 * HOUR)
        item_id = "01" + graph_id("item", user.id, n)[6:24]
        parent = world.items[rng.choice(folders)]
        item: dict[str, Any] = {
            "id": item_id, "createdDateTime": iso(created), "lastModifiedDateTime": iso(modified),
            "eTag": f'"{{{guid("etag", item_id)}}},1"', "cTag": f'"c:{{{guid("etag", item_id)}}},1"',
            "parentReference": {"driveId": world.drive_id, "driveType": "business", "id": parent["id"],
                                "path": "/drive/root:"}}
        if n % 8 == 0:
            item.update(name=f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()}",
                        folder={"childCount": 0}, size=0)
            folders.append(item_id)
        else:
            ext = rng.choice(sorted(MIME))
            item.update(name=f"{rng.choice(NOUNS)}-{n}.{ext}", file={"mimeType": MIME[ext]},
                        size=rng.randrange(100, 4_000_000))
        parent["folder"]["childCount"] += 1
        world.items[item_id] = item
        world.record("driveItems", item_id, "updated", modified)
    for t in range(opts.teams_per_user):
        team_id = guid("team", user.id, t)
        world.teams.append({"id": team_id, "displayName": f"{rng.choice(ADJECTIVES).title()} "
                                                          f"{rng.choice(NOUNS).title()} Team",
                            "description": f"Team {t}", "isArchived": False, "tenantId": guid("tenant", seed)})
        channels = []
        for c in range(opts.channels_per_team):
            cid = f"19:{digest_int('chan', team_id, c):032x}@thread.tacv2"
            channels.append({"id": cid, "displayName": "General" if c == 0 else f"{rng.choice(NOUNS).title()}",
                             "description": None, "membershipType": "standard",
                             "createdDateTime": iso(DATA_EPOCH + c * HOUR), "email": ""})
            world.channel_messages[cid] = [
                chat_message(user, team_id, cid, (DATA_EPOCH + m * HOUR + rng.randrange(HOUR)) * 1000 + c,
                             f"<p>{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} #{m}</p>")
                for m in range(opts.messages_per_channel)]
            for msg in world.channel_messages[cid]:
                world.record("chatMessages", msg["id"], "created", int(msg["id"]) / 1000)
        world.channels[team_id] = channels
    return world


def chat_message(user: User, team_id: str, channel_id: str, when_ms: int, html: str) -> dict[str, Any]:
    return {"id": str(when_ms), "replyToId": None, "etag": str(when_ms), "messageType": "message",
            "createdDateTime": iso(when_ms / 1000), "lastModifiedDateTime": iso(when_ms / 1000),
            "lastEditedDateTime": None, "deletedDateTime": None, "subject": None, "importance": "normal",
            "locale": "en-us", "webUrl": f"https://teams.microsoft.com/l/message/{channel_id}/{when_ms}",
            "from": {"application": None, "device": None,
                     "user": {"id": user.id, "displayName": user.name, "userIdentityType": "aadUser"}},
            "body": {"contentType": "html", "content": html},
            "channelIdentity": {"teamId": team_id, "channelId": channel_id},
            "attachments": [], "mentions": [], "reactions": []}


# --- the emulator -------------------------------------------------------------------------------------


class GraphEmulator(Emulator):
    """Microsoft Graph v1.0. Example: ``emu = OutlookEmulator(tokens=["eyJ0eXAi.demo"], seed=1)``."""

    service: ClassVar[str] = "outlook"
    prefixes = ("/v1.0",)
    default_rate = (10000, 600.0)
    default_scopes = DEFAULT_SCOPES
    options_model = GraphOptions
    fallback_auth = "none"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.users: dict[str, User] = {}          # token -> user
        self.tenants: dict[str, Tenant] = {}      # user id -> data
        self._requests = 0
        super().__init__(*args, **kwargs)
        # access tokens live 75 minutes (the average of Entra's random 60-90); knobs in `self.oauth.options`
        self.oauth = AuthorizationServer(self, OAuthServerOptions(**OAUTH_OPTIONS),
                                         dialect=MicrosoftDialect(self.clock))

    def mount(self, app: web.Application) -> None:
        self.oauth.mount(app)

    def on_token_added(self, record: TokenRecord) -> None:
        self.users[record.token] = derive_user(record.subject or record.token)

    def world(self, call: Call) -> Tenant:
        user = self.users[call.token or ""]
        if user.id not in self.tenants:
            self.tenants[user.id] = generate(self.seed, user, self.options)
        return self.tenants[user.id]

    # --- routes ---------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        mail, files = ("ErrorAccessDenied", MAIL_READ), ("accessDenied", FILES_READ)
        return [
            Route("GET", "/me", self._api(self.me, ("Authorization_RequestDenied", USER_READ))),
            Route("POST", "/me/revokeSignInSessions", self._api(self.revoke_sessions, ("Authorization_RequestDenied",
                                                                                     USER_READ))),
            Route("GET", "/me/mailFolders", self._api(self.mail_folders, mail)),
            Route("GET", "/me/messages", self._api(self.list_messages, mail)),
            Route("GET", "/me/messages/{id}", self._api(self.get_message, mail)),
            Route("GET", "/me/mailFolders/{folder}/messages", self._api(self.list_messages, mail)),
            Route("POST", "/me/sendMail", self._api(self.send_mail, ("ErrorAccessDenied", MAIL_SEND))),
            Route("GET", "/me/drive", self._api(self.drive, files)),
            Route("GET", "/me/drive/root", self._api(self.drive_item, files)),
            Route("GET", "/me/drive/root/children", self._api(self.children, files)),
            Route("GET", "/me/drive/items/{id}", self._api(self.drive_item, files)),
            Route("GET", "/me/drive/items/{id}/children", self._api(self.children, files)),
            Route("GET", "/me/joinedTeams", self._api(self.joined_teams, ("Forbidden", TEAMS_READ))),
            Route("GET", "/teams/{team}/channels", self._api(self.list_channels, ("Forbidden", CHANNELS_READ))),
            Route("GET", "/teams/{team}/channels/{channel}/messages",
                  self._api(self.channel_messages, ("Forbidden", CHANNEL_MESSAGES))),
            Route("POST", "/teams/{team}/channels/{channel}/messages",
                  self._api(self.post_channel_message, ("Forbidden", CHANNEL_SEND))),
        ]

    def _api(self, handler: Any, permission: tuple[str, tuple[str, ...]]) -> Any:
        code, scopes = permission

        async def run(call: Call) -> web.StreamResponse:
            if call.record is not None and not set(call.record.scopes) & set(scopes):
                message = ("Access is denied. Check credentials and try again." if code != "Forbidden" else
                           f"Missing role permissions on the request. API requires one of '{', '.join(scopes)}'.")
                return self.error(403, code, message)
            return await handler(call)
        return run

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
              inner: dict[str, str] | None = None) -> web.Response:
        """Graph's envelope, with the innerError every answer carries (date, request ids)."""
        self._requests += 1
        request_id = guid("request", self.seed, self._requests)
        body = {"error": {"code": code, "message": message,
                          "innerError": {**(inner or {}), "date": iso(self.clock()), "request-id": request_id,
                                         "client-request-id": request_id}}}
        return json_response(body, status, {"request-id": request_id, **(headers or {})})

    def _page(self, call: Call, items: list[Any], default: int, high: int) -> web.Response:
        """`{"value": [...], "@odata.nextLink": ...}` with `$top` bounded as the endpoint documents."""
        raw_top = call.params.get("$top")
        if raw_top is not None and (not raw_top.isdigit() or not 1 <= int(raw_top) <= high):
            raise Reply(self.error(400, "BadRequest", f"Invalid page size specified: '{raw_top[:20]}'. Must be "
                                                      f"between 1 and {high} inclusive."))
        top = int(raw_top) if raw_top is not None else default
        start = 0
        skip = call.params.get("$skiptoken")
        if skip is not None:
            offset = decode_cursor(skip, "skip:")
            if offset is None or not offset.isdigit() or int(offset) > len(items):
                raise Reply(self.error(400, "BadRequest", "Invalid skip token."))
            start = int(offset)
        body: dict[str, Any] = {"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#{call.path}",
                                "value": items[start:start + top]}
        if start + top < len(items):
            query = {k: v for k, v in call.request.query.items() if k != "$skiptoken"}
            url = call.request.url.with_query({**query, "$top": str(top),
                                               "$skiptoken": encode_cursor(f"skip:{start + top}")})
            body["@odata.nextLink"] = str(url)
        return json_response(body)

    # --- user and mail --------------------------------------------------------------------------------

    async def me(self, call: Call) -> web.StreamResponse:
        return json_response(self.world(call).user.json())

    async def revoke_sessions(self, call: Call) -> web.StreamResponse:
        """Graph's way to revoke (no RFC 7009 endpoint): every grant of this user dies, refresh tokens too."""
        subject = call.record.subject if call.record is not None else None
        for grant in {id(g): g for g in self.oauth.grants.values() if g.subject == subject}.values():
            self.oauth.revoke_grant(grant)
        if subject is None and call.token:
            self.revoke(call.token)
        return json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean",
                              "value": True})

    async def mail_folders(self, call: Call) -> web.StreamResponse:
        world = self.world(call)
        folders = [{"id": fid, "displayName": name, "parentFolderId": "msgfolderroot", "childFolderCount": 0,
                    "totalItemCount": sum(1 for m in world.messages if m["parentFolderId"] == fid),
                    "unreadItemCount": sum(1 for m in world.messages if m["parentFolderId"] == fid
                                           and not m["isRead"])} for fid, name in FOLDERS]
        return self._page(call, folders, 10, 1000)

    async def list_messages(self, call: Call) -> web.StreamResponse:
        world = self.world(call)
        folder = call.request.match_info.get("folder")
        if folder is not None:
            folder = folder.lower()
            if folder not in dict(FOLDERS):
                raise Reply(self.error(404, "ErrorItemNotFound", "The specified object was not found in the store."))
        found = [m for m in reversed(world.messages) if folder is None or m["parentFolderId"] == folder]
        return self._page(call, found, 10, 1000)

    async def get_message(self, call: Call) -> web.StreamResponse:
        wanted = call.request.match_info["id"]
        found = next((m for m in self.world(call).messages if m["id"] == wanted), None)
        if found is None:
            raise Reply(self.error(404, "ErrorItemNotFound", "The specified object was not found in the store."))
        return json_response(found)

    async def _json(self, call: Call) -> dict[str, Any]:
        try:
            value = json.loads(await read_body(call.request, self.max_body) or b"null")
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise Reply(self.error(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-"
                                                      "Type header is set and payload is of valid JSON format."))
        return value

    async def send_mail(self, call: Call) -> web.StreamResponse:
        body = await self._json(call)
        message = body.get("message")
        recipients = message.get("toRecipients") if isinstance(message, dict) else None
        addresses = [r["emailAddress"].get("address") if isinstance(r, dict) and isinstance(r.get("emailAddress"), dict)
                     else None for r in (recipients if isinstance(recipients, list) else [])]
        if not addresses or not all(isinstance(a, str) and "@" in a for a in addresses):
            raise Reply(self.error(400, "ErrorInvalidRecipients", "At least one recipient is not valid."))
        world = self.world(call)
        content = message.get("body") if isinstance(message.get("body"), dict) else {}
        now = self.clock()
        msg = mail_message(world.user, len(world.messages), now, "sentitems", world.user.upn,
                           str(message.get("subject") or ""), str(content.get("content") or ""), addresses)
        if body.get("saveToSentItems", True) is not False:
            world.messages.append(msg)
            world.record("messages", msg["id"], "created", now)
        return web.Response(status=202)

    # --- drive ----------------------------------------------------------------------------------------

    async def drive(self, call: Call) -> web.StreamResponse:
        world = self.world(call)
        used = sum(i.get("size", 0) for i in world.items.values() if "file" in i)
        user = world.user
        return json_response({"id": world.drive_id, "driveType": "business", "name": "OneDrive",
                              "owner": {"user": {"id": user.id, "displayName": user.name, "email": user.upn}},
                              "quota": {"total": 1024**4, "used": used, "remaining": 1024**4 - used,
                                        "deleted": 0, "state": "normal"}})

    def _item(self, call: Call) -> dict[str, Any]:
        world = self.world(call)
        wanted = call.request.match_info.get("id", world.root_id)
        item = world.items.get(wanted)
        if item is None:
            raise Reply(self.error(404, "itemNotFound", "The resource could not be found."))
        return item

    async def drive_item(self, call: Call) -> web.StreamResponse:
        return json_response(self._item(call))

    async def children(self, call: Call) -> web.StreamResponse:
        parent = self._item(call)
        if "folder" not in parent:
            return self._page(call, [], 200, 1000)
        kids = [i for i in self.world(call).items.values() if i.get("parentReference", {}).get("id") == parent["id"]]
        kids.sort(key=lambda i: (i["name"].lower(), i["id"]))
        return self._page(call, kids, 200, 1000)

    # --- teams ----------------------------------------------------------------------------------------

    async def joined_teams(self, call: Call) -> web.StreamResponse:
        return self._page(call, self.world(call).teams, 1000, 1000)

    def _channels(self, call: Call) -> list[dict[str, Any]]:
        team = call.request.match_info["team"]
        channels = self.world(call).channels.get(team)
        if channels is None:
            raise Reply(self.error(404, "NotFound", f"No team found with Group Id {team[:40]}"))
        return channels

    def _channel(self, call: Call) -> list[dict[str, Any]]:
        wanted = call.request.match_info["channel"]
        if not any(c["id"] == wanted for c in self._channels(call)):
            raise Reply(self.error(404, "NotFound", "Channel not found"))
        return self.world(call).channel_messages[wanted]

    async def list_channels(self, call: Call) -> web.StreamResponse:
        return self._page(call, self._channels(call), 1000, 1000)

    async def channel_messages(self, call: Call) -> web.StreamResponse:
        return self._page(call, list(reversed(self._channel(call))), 20, 50)

    async def post_channel_message(self, call: Call) -> web.StreamResponse:
        messages = self._channel(call)
        body = (await self._json(call)).get("body")
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, str) or not content.strip():
            raise Reply(self.error(400, "BadRequest", "Missing body content"))
        world = self.world(call)
        when_ms = max(int(self.clock() * 1000), int(messages[-1]["id"]) + 1 if messages else 0)
        team, channel = call.request.match_info["team"], call.request.match_info["channel"]
        msg = chat_message(world.user, team, channel, when_ms,
                           content if body.get("contentType") == "html" else content.replace("<", "&lt;"))
        messages.append(msg)
        world.record("chatMessages", msg["id"], "created", when_ms / 1000)
        return json_response(msg, 201)

    # --- dialect hooks --------------------------------------------------------------------------------

    def quotas(self, call: Call) -> list[Quota]:
        # Graph's limits are per app and mailbox / user, not per token: every token of one user shares them
        if not call.token:
            return []
        limit, window = (self.rate_limit.limit, self.rate_limit.window) if self.rate_limit else self.default_rate
        return [Quota(f"user:{self.users[call.token].id}", limit, window)]

    def _retry_after(self, seconds: int) -> str:
        return f"{seconds}.128" if self.options.fractional_retry_after else str(seconds)

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        challenge = {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/'
                                         f'common/oauth2/authorize", client_id="{GRAPH_APP}"'}
        message = {TokenStatus.MISSING: "Access token is empty.",
                   TokenStatus.EXPIRED: "Access token has expired or is not yet valid.",
                   TokenStatus.REVOKED: "Access token validation failure. The token has been revoked."}.get(
            status, "IDX14100: JWT is not well formed, there are no dots (.).")
        return self.error(401, "InvalidAuthenticationToken", message, challenge)

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        inner = {"code": "429", "message": "Please retry after", "status": "429"}
        return self.error(429, "TooManyRequests", "Please retry again later.",
                          {"Retry-After": self._retry_after(state.retry_after)}, inner)

    def burst_limited(self, call: Call) -> web.StreamResponse:
        inner = {"code": "throttledRequest"}
        return self.error(429, "activityLimitReached", "The request has been throttled",
                          {"Retry-After": self._retry_after(self.faults.burst_retry_after)}, inner)

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        kind = rng.choice((500, 503, 504))
        if kind == 503:
            return self.error(503, "serviceNotAvailable", "The service is temporarily unavailable.",
                              {"Retry-After": "1"})
        if kind == 504:
            return self.error(504, "UnknownError", "Gateway Timeout")
        return self.error(500, "generalException", "An unspecified error has occurred.")

    def not_found(self, call: Call) -> web.StreamResponse:
        segment = call.path.strip("/").split("/")[0][:40]
        return self.error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    def too_large(self, call: Call) -> web.StreamResponse:
        return self.error(413, "RequestEntityTooLarge", "The request entity is too large.")


class OutlookEmulator(GraphEmulator):
    """Graph with Outlook's default limit: 10,000 requests per 10 minutes per mailbox."""

    service = "outlook"
    default_rate = (10000, 600.0)


class OneDriveEmulator(GraphEmulator):
    """Graph with OneDrive's default limit: 1,200 resource units per minute (one request as two units)."""

    service = "onedrive"
    default_rate = (600, 60.0)


class TeamsEmulator(GraphEmulator):
    """Graph with Teams' default limit: 30 requests per second ("other GET", per app per tenant)."""

    service = "teams"
    default_rate = (30, 1.0)
