"""Outlook mail connector on Microsoft Graph (shared/reference/apis-messaging.md §2); dialect: connectors.graph.

Identity ``GET /me``. Mail lists (``/me/messages``, ``/me/mailFolders/{id}/messages``) page by
``@odata.nextLink`` (``$top`` 1-1000, default 10); ``POST /me/sendMail`` answers 202 with no body. Limits:
10,000 requests per 10 minutes and 4 concurrent requests per app and mailbox; throttling is 429 with Retry-After.

>>> outlook = OutlookConnector(ApiCredential.from_tokens(access, refresh), app_id="int_…", base_url=None,
...                            transport=t)                                               # doctest: +SKIP
"""

from __future__ import annotations

from connectors.catalogue import SERVICES
from connectors.graph import GraphConnector, microsoft_oauth

SCOPES = ("Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite", "Mail.Send", "User.Read", "offline_access")

OAUTH = microsoft_oauth("outlook", ("User.Read", "Mail.Read", "Mail.Send"))


class OutlookConnector(GraphConnector):
    """Microsoft Graph mail (``/me/messages``, ``/me/mailFolders``, ``/me/sendMail``)."""

    descriptor = SERVICES["outlook"]
