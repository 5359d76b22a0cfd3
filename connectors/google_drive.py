"""Google Drive API v3 connector (shared/reference/apis-storage-dev.md §1); the dialect is connectors.google's.

Base URL ``https://www.googleapis.com/drive/v3``; identity
``GET /about?fields=user(displayName,emailAddress,permissionId)`` (``about.get`` refuses a request without
``fields``). ``files.list`` pages with ``pageToken`` / ``nextPageToken`` (``pageSize`` 1-1000); the changes feed
(``changes/startPageToken``, ``changes``) uses the same page-token rule, ending with ``newStartPageToken``.

>>> drive = GoogleDriveConnector(cred, app_id="int_…", base_url=None, transport=t)      # doctest: +SKIP
>>> (await drive.authenticate()).details["permissionId"]                               # doctest: +SKIP
'01234567890123456789'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity
from connectors.catalogue import SERVICES
from connectors.google import GoogleConnector, google_oauth

SCOPES = {
    "readonly": "https://www.googleapis.com/auth/drive.readonly",
    "metadata": "https://www.googleapis.com/auth/drive.metadata.readonly",
    "file": "https://www.googleapis.com/auth/drive.file",
    "full": "https://www.googleapis.com/auth/drive",
}

OAUTH = google_oauth("google_drive", (SCOPES["readonly"], SCOPES["file"]))


class GoogleDriveConnector(GoogleConnector):
    """``GoogleDriveConnector(ApiCredential.from_tokens(access, refresh), app_id=…, base_url=None, transport=t)``"""

    descriptor = SERVICES["google_drive"]

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, dict) or not (user.get("permissionId") or user.get("emailAddress")):
            raise self.not_google("a Drive user")
        email, name = user.get("emailAddress"), user.get("displayName")
        account = str(user.get("permissionId") or email)
        display = f"{email} ({name})" if email and name else str(email or name or account)
        details = {key: user.get(key) for key in ("displayName", "emailAddress", "permissionId")}
        return AccountIdentity(account, display, details)
