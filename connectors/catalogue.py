"""The catalogue: all fifteen services, with the limits each provider publishes (shared/reference/apis-*.md).

How the published numbers become a RateLimit (the gate enforces per_minute with burst B as at most
per_minute in any sliding minute, see connectors.limits):

- A per-second or per-few-seconds limit P per S seconds becomes the largest per_minute N whose worst S-second
  window stays within P: the bucket admits at most B + S*(N-B)/60 in S seconds, so N = B + 60*(P-B)/S.
  (Discord 50/s, Teams 4/s per channel, HubSpot 100/10 s, Pipedrive 20/2 s.)
- A limit per ten minutes becomes a tenth of it per minute (Outlook 10,000 / 10 min -> 1,000 / min).
- Quota "units" become requests at the cost of the common read calls (Gmail: 5 units per messages.get/list).
- Where a provider publishes several tiers or versions, the lowest one is the default; users may narrow it.
- Where nothing is published (Dropbox, Jira's exact quotas), a cautious default is chosen and said so.
"""

from __future__ import annotations

from domain.errors import InvalidConfiguration
from domain.values import AuthMode, RateLimit, ServiceCategory

from connectors.base import ServiceDescriptor

API_KEY, OAUTH2 = AuthMode.API_KEY, AuthMode.OAUTH2
GRAPH = "https://graph.microsoft.com/v1.0"
IMPLEMENTED = frozenset({"jira", "gitlab", "github", "slack", "sendgrid", "gmail", "google_drive", "outlook", "onedrive",
                         "teams", "pipedrive", "salesforce", "dropbox", "hubspot", "discord"})


def per_window(limit: int, seconds: float, burst: int) -> RateLimit:
    """The per-minute limit (with ``burst``) that keeps every ``seconds``-long window within ``limit``.

    >>> per_window(100, 10, 10)          # HubSpot: 100 requests per 10 s
    RateLimit(per_minute=550, per_hour=None, per_day=None, burst=10)
    """
    per_minute = burst + int(60 * (limit - burst) / seconds)
    return RateLimit(per_minute=per_minute, burst=burst)


def _with(limit: RateLimit, **more: int) -> RateLimit:
    return RateLimit(**{**limit.as_dict(), **more})


def _service(name: str, display: str, category: ServiceCategory, modes: tuple[AuthMode, ...], base: str,
             rate: RateLimit, scopes: tuple[str, ...], identity: str, docs: str) -> ServiceDescriptor:
    return ServiceDescriptor(name, display, category, modes, base, rate, scopes, identity, docs,
                             implemented=name in IMPLEMENTED)


_ALL = (
    # ---- email ------------------------------------------------------------------------------------------
    _service("gmail", "Gmail", ServiceCategory.EMAIL, (OAUTH2,), "https://gmail.googleapis.com/gmail/v1",
             # 6,000 quota units per user per minute (the newer, lower quota page) at 5 units a read call
             RateLimit(per_minute=1200, burst=50),
             ("https://www.googleapis.com/auth/gmail.readonly", "https://www.googleapis.com/auth/gmail.send"),
             "/users/me/profile", "https://developers.google.com/gmail/api/reference/quota"),
    _service("outlook", "Outlook", ServiceCategory.EMAIL, (OAUTH2,), GRAPH,
             # 10,000 requests per 10 minutes per app per mailbox; 4 concurrent requests
             RateLimit(per_minute=1000, per_hour=60000, burst=20),
             ("Mail.Read", "Mail.Send", "User.Read", "offline_access"),
             "/me", "https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits"),
    _service("sendgrid", "SendGrid", ServiceCategory.EMAIL, (API_KEY,), "https://api.sendgrid.com/v3",
             # no table is published; the documented per-user default is 600 requests per minute
             RateLimit(per_minute=600, burst=20),
             ("mail.send", "user.profile.read"),
             "/scopes",
             "https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits"),
    # ---- chat -------------------------------------------------------------------------------------------
    _service("slack", "Slack", ServiceCategory.CHAT, (API_KEY, OAUTH2), "https://slack.com/api",
             # per method per workspace; Tier 3 ("50+ per minute") as the general default
             RateLimit(per_minute=50, burst=10),
             ("channels:read", "channels:history", "users:read", "chat:write"),
             "/auth.test", "https://api.slack.com/apis/rate-limits"),
    _service("teams", "Microsoft Teams", ServiceCategory.CHAT, (OAUTH2,), GRAPH,
             # at most 4 requests per second per app on one team or channel
             per_window(4, 1, 2),
             ("Team.ReadBasic.All", "Channel.ReadBasic.All", "ChannelMessage.Read.All", "ChannelMessage.Send",
              "User.Read", "offline_access"),
             "/me", "https://learn.microsoft.com/graph/throttling-limits#microsoft-teams-service-limits"),
    _service("discord", "Discord", ServiceCategory.CHAT, (API_KEY, OAUTH2), "https://discord.com/api/v10",
             # global 50 requests per second per bot (per-route buckets are told by headers)
             per_window(50, 1, 10),
             ("identify", "guilds", "bot"),
             "/users/@me", "https://discord.com/developers/docs/topics/rate-limits"),
    # ---- storage ----------------------------------------------------------------------------------------
    _service("google_drive", "Google Drive", ServiceCategory.STORAGE, (OAUTH2,),
             "https://www.googleapis.com/drive/v3",
             # the older (lower) published quota: 12,000 queries per 60 s per user
             RateLimit(per_minute=12000, burst=100),
             ("https://www.googleapis.com/auth/drive.readonly", "https://www.googleapis.com/auth/drive.file"),
             "/about?fields=user(displayName,emailAddress,permissionId)",
             "https://developers.google.com/drive/api/guides/limits"),
    _service("dropbox", "Dropbox", ServiceCategory.STORAGE, (OAUTH2,), "https://api.dropboxapi.com/2",
             # no numeric limit is published: a cautious default; 429 retry_after is honoured
             RateLimit(per_minute=600, burst=20),
             ("account_info.read", "files.metadata.read", "files.content.read", "files.content.write"),
             "/users/get_current_account", "https://www.dropbox.com/developers/documentation/http/documentation"),
    _service("onedrive", "OneDrive", ServiceCategory.STORAGE, (OAUTH2,), GRAPH,
             # 1,200 resource units per minute for the smallest tenants, 2 units per listing
             RateLimit(per_minute=600, burst=20),
             ("Files.Read", "Files.ReadWrite", "User.Read", "offline_access"),
             "/me/drive", "https://learn.microsoft.com/sharepoint/dev/general-development/"
                          "how-to-avoid-getting-throttled-or-blocked-in-sharepoint-online"),
    # ---- development --------------------------------------------------------------------------------------
    _service("github", "GitHub", ServiceCategory.DEVELOPMENT, (API_KEY, OAUTH2), "https://api.github.com",
             # primary 5,000 per hour per user; secondary 900 points per minute per endpoint (GET = 1 point)
             RateLimit(per_minute=900, per_hour=5000, burst=20),
             ("repo", "read:user", "user:email", "read:org"),
             "/user", "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"),
    _service("gitlab", "GitLab", ServiceCategory.DEVELOPMENT, (API_KEY, OAUTH2), "https://gitlab.com/api/v4",
             # GitLab.com: authenticated API 2,000 requests per minute per user
             RateLimit(per_minute=2000, burst=40),
             ("read_api", "read_user", "api"),
             "/user", "https://docs.gitlab.com/user/gitlab_com/#rate-limits-on-gitlabcom"),
    _service("jira", "Jira", ServiceCategory.DEVELOPMENT, (API_KEY, OAUTH2),
             "https://your-domain.atlassian.net/rest/api/3",
             # points quotas and per-second limits exist but their numbers are not published: cautious default
             RateLimit(per_minute=300, burst=10),
             ("read:jira-user", "read:jira-work", "write:jira-work", "offline_access"),
             "/myself", "https://developer.atlassian.com/cloud/jira/platform/rate-limiting/"),
    # ---- crm --------------------------------------------------------------------------------------------
    _service("salesforce", "Salesforce", ServiceCategory.CRM, (OAUTH2,), "https://login.salesforce.com",
             # rolling 24-hour org allocation; 15,000 is the Developer Edition figure, the lowest
             RateLimit(per_day=15000),
             ("api", "refresh_token", "offline_access"),
             "/services/oauth2/userinfo",
             "https://developer.salesforce.com/docs/atlas.en-us.salesforce_app_limits_cheatsheet.meta/"
             "salesforce_app_limits_cheatsheet/salesforce_app_limits_platform_api.htm"),
    _service("hubspot", "HubSpot", ServiceCategory.CRM, (API_KEY, OAUTH2), "https://api.hubapi.com",
             # private apps on Free/Starter: 100 requests per 10 s and 250,000 per day
             _with(per_window(100, 10, 10), per_day=250000),
             ("crm.objects.contacts.read", "crm.objects.companies.read", "crm.objects.deals.read", "oauth"),
             "/account-info/v3/details", "https://developers.hubspot.com/docs/api/usage-details"),
    _service("pipedrive", "Pipedrive", ServiceCategory.CRM, (API_KEY, OAUTH2), "https://api.pipedrive.com/v1",
             # burst: 20 per 2 s for an api_token on the lowest plan; daily budget 30,000 tokens per seat
             # at 2 tokens per single GET
             _with(per_window(20, 2, 5), per_day=15000),
             ("deals:read", "deals:full", "users:read"),
             "/users/me", "https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting"),
)

SERVICES: dict[str, ServiceDescriptor] = {s.name: s for s in _ALL}


def get_service(name: str) -> ServiceDescriptor:
    """The catalogue entry for ``name``.

    >>> get_service("github").rate_limit.per_hour
    5000
    >>> get_service("myspace")
    Traceback (most recent call last):
    ...
    domain.errors.InvalidConfiguration: unknown service 'myspace'; known: discord, dropbox, github, ...
    """
    desc = SERVICES.get(name) if isinstance(name, str) else None
    if desc is None:
        raise InvalidConfiguration(f"unknown service {str(name)[:40]!r}; known: {', '.join(sorted(SERVICES))}",
                                   field="service")
    return desc
