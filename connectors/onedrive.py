"""OneDrive connector on Microsoft Graph (shared/reference/apis-storage-dev.md §3); dialect: connectors.graph.

Identity ``GET /me/drive`` (the catalogue's: it proves both the token and the Files scope): ``id``,
``driveType``, ``owner.user`` (id, displayName, email), ``quota``. Folder listings
(``/me/drive/root/children``, ``/me/drive/items/{id}/children``) page by ``@odata.nextLink``; the delta feed
(``/me/drive/root/delta``) ends a round with ``@odata.deltaLink``. Throttling is 429 (``activityLimitReached``)
or 503 with Retry-After; above ~80 % of the per-minute resource units the answers carry ``RateLimit-*`` headers,
which the dialect passes to the gate.

>>> drive = OneDriveConnector(ApiCredential.from_tokens(access, refresh), app_id="int_…", base_url=None,
...                           transport=t)                                                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import AccountIdentity
from connectors.catalogue import SERVICES
from connectors.graph import GraphConnector, microsoft_oauth, user_identity
from domain.errors import IntegrationError

SCOPES = ("Files.Read", "Files.ReadWrite", "Files.Read.All", "User.Read", "offline_access")

OAUTH = microsoft_oauth("onedrive", ("User.Read", "Files.ReadWrite"))


class OneDriveConnector(GraphConnector):
    """Microsoft Graph drive (``/me/drive``, items, children, delta)."""

    descriptor = SERVICES["onedrive"]

    def identity_from(self, body: Any, headers: Mapping[str, str] | None = None) -> AccountIdentity:
        owner = body.get("owner") if isinstance(body, dict) else None
        user = owner.get("user") if isinstance(owner, dict) else None
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not isinstance(user, dict) \
                or not user.get("id"):
            raise self.failure(IntegrationError.INVALID_CONFIGURATION,
                               "the identity endpoint did not return a OneDrive drive; check the base URL",
                               status=None)
        person = user_identity(user)
        details = {**person.details, "drive_id": body["id"], "driveType": body.get("driveType")}
        return AccountIdentity(person.account_id, person.display, details)
