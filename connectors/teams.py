"""Microsoft Teams connector on Microsoft Graph (shared/reference/apis-messaging.md §5); dialect: connectors.graph.

Identity ``GET /me``. ``/me/joinedTeams``, ``/teams/{id}/channels`` and
``/teams/{id}/channels/{channel}/messages`` (``$top`` at most 50, default 20) page by ``@odata.nextLink``;
posting is ``POST /teams/{id}/channels/{channel}/messages`` with ``{"body": {"contentType": "html", ...}}``
(201). At most 4 requests per second per app on one team or channel; throttling is 429 with Retry-After.

>>> teams = TeamsConnector(ApiCredential.from_tokens(access, refresh), app_id="int_…", base_url=None,
...                        transport=t)                                                   # doctest: +SKIP
"""

from __future__ import annotations

from connectors.catalogue import SERVICES
from connectors.graph import GraphConnector, microsoft_oauth

SCOPES = ("Team.ReadBasic.All", "Channel.ReadBasic.All", "ChannelMessage.Read.All", "ChannelMessage.Send",
          "Chat.Read", "User.Read", "offline_access")

OAUTH = microsoft_oauth("teams", ("User.Read", "Team.ReadBasic.All", "Channel.ReadBasic.All",
                                  "ChannelMessage.Read.All", "ChannelMessage.Send"))


class TeamsConnector(GraphConnector):
    """Microsoft Graph Teams (teams, channels, channel messages)."""

    descriptor = SERVICES["teams"]
