"""SendGrid v3 emulator (reference: apis-messaging.md §3).

Base URL `http://127.0.0.1:PORT/v3`; auth `Authorization: Bearer SG.…` only. Every answer to a request
carrying a valid key has `X-RateLimit-Limit/-Remaining/-Reset` (epoch seconds); an exhausted window
answers 429 `{"errors":[{"field":null,"message":"too many requests"}]}` (default quota 600 per 60 s).
Keys carry permissions ("scopes"); an endpoint needing one the key lacks answers 403. Accepted mail is
kept in `outbox` so tests can see what a connector sent.

Error answers, all of the shape `{"errors":[{"field": <name>|null, "message": "...", "help": ...}]}`:
    400 bad JSON or a mail/send field (named)   401 authorization required | grant invalid/expired/revoked
    403 access forbidden   404 resource not found   413 body over 20 MB   429 rate limit   500/503 faults
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .base import (
    ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, Call, Emulator, Reply, Route, TokenRecord, TokenStatus,
    WindowState, digest_int, hint, json_response, pick, read_body, seeded,
)

DATA_EPOCH = 1672531200  # 2023-01-01: generated bounces start here, independent of the clock
MAIL_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message."
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MESSAGES = {
    "personalizations": "The personalizations field is required and must have at least one personalization.",
    "to": "The to array is required for all personalization objects, and must have at least one email object "
          "with a valid email address.",
    "from": "The from object must be provided for every email send. It is an object that requires an email "
            "parameter, but may also contain a name parameter.",
    "subject": "The subject is required. You can get around this requirement if you use a template with a "
               "subject defined or if every personalization has a subject defined.",
    "content": "Unless a valid template_id is provided, the content parameter is required. There must be at "
               "least one defined content block. We typically suggest both text/plain and text/html blocks are "
               "included, but only one block is required.",
}


class SendGridOptions(BaseModel):
    """Knobs for sizes and facts the reference marks unverified."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    bounces: int = Field(137, ge=0, le=100_000)
    max_mail_bytes: int = Field(20 * 1024 * 1024, ge=1)
    account_type: Literal["free", "paid"] = "paid"
    message_id_header: bool = True  # X-Message-Id on 202 [U]


def errors(*items: tuple[str | None, str], status: int = 400, help_url: bool = False) -> web.Response:
    body = [{"field": name, "message": message, "help": (MAIL_HELP + name if help_url and name else None)}
            for name, message in items]
    return json_response({"errors": body}, status)


def strict_int(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Reply(errors((name, f"{name} must be an integer"))) from None
    if not low <= value <= high:
        raise Reply(errors((name, f"{name} must be between {low} and {high}")))
    return value


@dataclass
class Account:
    username: str
    user_id: int
    first_name: str
    last_name: str
    bounces: list[dict[str, Any]] | None = None  # generated on first use


class SendGridEmulator(Emulator):
    """SendGrid v3. Example: ``emu = SendGridEmulator(tokens=["SG.demo.key"], seed=1)``."""

    service = "sendgrid"
    prefixes = ("/v3",)
    default_rate = (600, 60.0)
    default_scopes = ("mail.send", "user.profile.read", "user.account.read", "suppression.bounces.read")
    options_model = SendGridOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.accounts: dict[str, Account] = {}  # token -> account
        self.outbox: list[dict[str, Any]] = []  # accepted mail: message_id, key hint, the request body
        super().__init__(*args, **kwargs)
        self._ids = random.Random(digest_int(self.seed, "message-ids"))

    def on_token_added(self, record: TokenRecord) -> None:
        h = digest_int("sendgrid-account", record.token)
        self.accounts[record.token] = Account(f"{pick(ADJECTIVES, h)}_{pick(NOUNS, h >> 8)}{h % 1000}",
                                              1_000_000 + (h >> 16) % 9_000_000, pick(FIRST_NAMES, h >> 24),
                                              pick(LAST_NAMES, h >> 32))

    def _bounces(self, account: Account) -> list[dict[str, Any]]:
        if account.bounces is None:
            rng = seeded(self.seed, "bounces", account.username)
            created = DATA_EPOCH
            account.bounces = []
            for index in range(self.options.bounces):
                created += 600 + rng.randrange(86400)
                account.bounces.append({
                    "created": created, "email": f"{rng.choice(NOUNS)}.{index}@{rng.choice(ADJECTIVES)}.example",
                    "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
                    "status": "5.1.1"})
        return account.bounces

    # --- endpoints ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/scopes", self.get_scopes),
            Route("GET", "/user/profile", self.get_profile, name="user.profile.read"),
            Route("GET", "/user/account", self.get_account, name="user.account.read"),
            Route("POST", "/mail/send", self.mail_send, name="mail.send"),
            Route("GET", "/suppression/bounces", self.list_bounces, name="suppression.bounces.read"),
        ]

    def _require_scope(self, call: Call) -> Account:
        needed = call.route.name
        if needed and call.record is not None and needed not in call.record.scopes:
            raise Reply(errors((None, "access forbidden"), status=403))
        return self.accounts[call.token or ""]

    async def get_scopes(self, call: Call) -> web.StreamResponse:
        return json_response({"scopes": sorted(call.record.scopes if call.record else ())})

    async def get_profile(self, call: Call) -> web.StreamResponse:
        account = self._require_scope(call)
        return json_response({"first_name": account.first_name, "last_name": account.last_name,
                              "company": "Emulated Inc.", "address": "1 Loopback Way", "address2": "",
                              "city": "Localhost", "state": "", "zip": "12700", "country": "DE",
                              "phone": "+49 30 1270001", "website": "https://example.com",
                              "username": account.username, "user_id": account.user_id})

    async def get_account(self, call: Call) -> web.StreamResponse:
        self._require_scope(call)
        return json_response({"type": self.options.account_type, "reputation": 99.5})

    async def list_bounces(self, call: Call) -> web.StreamResponse:
        account = self._require_scope(call)
        params = call.params
        start = strict_int(params, "start_time", 0, 0, 2**40)
        end = strict_int(params, "end_time", 2**40, 0, 2**40)
        limit = strict_int(params, "limit", 500, 1, 500)
        offset = strict_int(params, "offset", 0, 0, 2**31)
        email = params.get("email")
        rows = [b for b in reversed(self._bounces(account))  # newest first
                if start <= b["created"] <= end and (not email or b["email"] == email)]
        return json_response(rows[offset:offset + limit])

    async def mail_send(self, call: Call) -> web.StreamResponse:
        self._require_scope(call)
        try:
            body = json.loads(await read_body(call.request, self.options.max_mail_bytes) or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Reply(errors((None, "Bad Request")))
        problems = self._mail_problems(body)
        if problems:
            raise Reply(errors(*problems, help_url=True))
        message_id = "".join(self._ids.choice(ID_ALPHABET) for _ in range(22))
        self.outbox.append({"message_id": message_id, "key": hint(call.token or ""), "body": body})
        headers = {"X-Message-Id": message_id} if self.options.message_id_header else {}
        return web.Response(status=202, headers=headers)

    def _mail_problems(self, body: dict[str, Any]) -> list[tuple[str | None, str]]:
        """Every rule of the documented required fields that `body` breaks, each naming its field."""
        problems: list[tuple[str | None, str]] = []
        people = body.get("personalizations")
        if not isinstance(people, list) or not people:
            problems.append(("personalizations", MESSAGES["personalizations"]))
            people = []
        elif len(people) > 1000:
            problems.append(("personalizations", "The personalizations field is limited to 1000 "
                                                 "personalizations per API request."))
        for i, person in enumerate(people):
            recipients = person.get("to") if isinstance(person, dict) else None
            if not isinstance(recipients, list) or not recipients:
                problems.append((f"personalizations.{i}.to", MESSAGES["to"]))
                continue
            for j, rcpt in enumerate(recipients):
                if not (isinstance(rcpt, dict) and EMAIL.match(str(rcpt.get("email", "")))):
                    problems.append((f"personalizations.{i}.to.{j}.email", "Does not contain a valid address."))
        sender = body.get("from")
        if not isinstance(sender, dict) or "email" not in sender:
            problems.append(("from", MESSAGES["from"]))
        elif not EMAIL.match(str(sender["email"])):
            problems.append(("from.email", "The from email does not contain a valid address."))
        templated = bool(body.get("template_id"))
        every_has_subject = bool(people) and all(isinstance(p, dict) and p.get("subject") for p in people)
        if not templated and not every_has_subject and not (isinstance(body.get("subject"), str) and body["subject"]):
            problems.append(("subject", MESSAGES["subject"]))
        content = body.get("content")
        if not templated and (not isinstance(content, list) or not content):
            problems.append(("content", MESSAGES["content"]))
        for i, block in enumerate(content if isinstance(content, list) else []):
            if not (isinstance(block, dict) and isinstance(block.get("value"), str) and block["value"]):
                problems.append((f"content.{i}.value", "The content value must be a string at least one "
                                                       "character in length."))
        send_at = body.get("send_at")
        if isinstance(send_at, int) and send_at > self.clock() + 72 * 3600:
            problems.append(("send_at", "The send_at parameter must be no more than 72 hours in the future."))
        return problems

    # --- dialect hooks --------------------------------------------------------------------------

    def auth_failure(self, call: Call, status: TokenStatus) -> web.StreamResponse:
        if status is TokenStatus.MISSING:
            return json_response({"errors": [{"field": None, "message": "authorization required"}]}, 401)
        return errors((None, "The provided authorization grant is invalid, expired, or revoked"), status=401)

    def rate_limited(self, call: Call, state: WindowState) -> web.StreamResponse:
        return json_response({"errors": [{"field": None, "message": "too many requests"}]}, 429)

    def burst_limited(self, call: Call) -> web.StreamResponse:
        quotas = self.quotas(call)
        if quotas:  # present the burst as an exhausted window so the headers agree with the 429
            state = self.counter.peek(quotas[0])
            call.quota = WindowState(state.limit, state.limit, state.window_end, state.now, False)
        return json_response({"errors": [{"field": None, "message": "too many requests"}]}, 429)

    def server_error(self, rng: random.Random) -> web.StreamResponse:
        if rng.random() < 0.5:
            return errors((None, "internal server error"), status=500)
        return web.Response(status=503, content_type="text/plain", text="Service Unavailable\n")

    def not_found(self, call: Call) -> web.StreamResponse:
        return json_response({"errors": [{"field": None, "message": "resource not found"}]}, 404)

    def too_large(self, call: Call) -> web.StreamResponse:
        limit_mb = self.options.max_mail_bytes / (1024 * 1024)
        return errors((None, f"The request body is larger than the {limit_mb:g} MB limit"), status=413)

    def decorate(self, call: Call, response: web.StreamResponse) -> None:
        quotas = self.quotas(call) if call.token else []
        state = call.quota or (self.counter.peek(quotas[0]) if quotas else None)
        if state is not None:
            response.headers["X-RateLimit-Limit"] = str(state.limit)
            response.headers["X-RateLimit-Remaining"] = str(state.remaining)
            response.headers["X-RateLimit-Reset"] = str(state.reset)
