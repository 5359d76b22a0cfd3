"""Gmail API v1 connector (shared/reference/apis-messaging.md §1); the dialect is connectors.google's.

Base URL ``https://gmail.googleapis.com/gmail/v1``; identity ``GET /users/me/profile`` (emailAddress,
messagesTotal, threadsTotal, historyId: the history id is where a later delta sync starts). Lists page with
``pageToken`` / ``nextPageToken`` (``maxResults`` at most 500). Quota is counted in units per user per
minute (messages.list/get cost 5), which the catalogue turns into requests.

>>> cred = ApiCredential.from_tokens("ya29.a0…", "1//0g…", expires_at=1_700_003_600.0)   # doctest: +SKIP
>>> gmail = GmailConnector(cred, app_id="int_…", base_url=None, transport=HttpTransport())  # doctest: +SKIP
>>> (await gmail.authenticate()).display                                                # doctest: +SKIP
'ada@example.com'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity
from connectors.catalogue import SERVICES
from connectors.google import GoogleConnector, google_oauth

SCOPES = {
    "readonly": "https://www.googleapis.com/auth/gmail.readonly",
    "metadata": "https://www.googleapis.com/auth/gmail.metadata",
    "send": "https://www.googleapis.com/auth/gmail.send",
    "modify": "https://www.googleapis.com/auth/gmail.modify",
    "compose": "https://www.googleapis.com/auth/gmail.compose",
    "full": "https://mail.google.com/",
}

OAUTH = google_oauth("gmail", (SCOPES["readonly"], SCOPES["send"]))


class GmailConnector(GoogleConnector):
    """``GmailConnector(ApiCredential.from_tokens(access, refresh), app_id=…, base_url=None, transport=t)``"""

    descriptor = SERVICES["gmail"]

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        if not isinstance(body, dict) or not isinstance(body.get("emailAddress"), str) or not body["emailAddress"]:
            raise self.not_google("a Gmail profile")
        details = {key: body.get(key) for key in ("emailAddress", "messagesTotal", "threadsTotal", "historyId")}
        return AccountIdentity(body["emailAddress"], body["emailAddress"], details)
