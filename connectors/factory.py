"""The seed's serviceFactory: from a catalogue name to a live Connector.

>>> connector_class("github").__name__
'GitHubConnector'
>>> connector_class("myspace")
Traceback (most recent call last):
...
domain.errors.InvalidConfiguration: unknown service 'myspace'; known: discord, dropbox, github, ...
"""

from __future__ import annotations

from typing import Any

from connectors.base import Connector
from connectors.catalogue import SERVICES, get_service
from connectors.discord import DiscordConnector
from connectors.dropbox import DropboxConnector
from connectors.github import GitHubConnector
from connectors.gitlab import GitLabConnector
from connectors.gmail import GmailConnector
from connectors.google_drive import GoogleDriveConnector
from connectors.hubspot import HubSpotConnector
from connectors.jira import JiraConnector
from connectors.onedrive import OneDriveConnector
from connectors.outlook import OutlookConnector
from connectors.pipedrive import PipedriveConnector
from connectors.salesforce import SalesforceConnector
from connectors.sendgrid import SendGridConnector
from connectors.slack import SlackConnector
from connectors.teams import TeamsConnector
from domain.errors import InvalidConfiguration
from domain.model import ApiCredential

CONNECTORS: dict[str, type[Connector]] = {
    cls.descriptor.name: cls for cls in (GitHubConnector, JiraConnector, GitLabConnector, SlackConnector, SendGridConnector, GmailConnector,
                                         GoogleDriveConnector, OutlookConnector, OneDriveConnector, TeamsConnector,
                                         PipedriveConnector, SalesforceConnector, DropboxConnector, DiscordConnector,
                                         HubSpotConnector)
}


def connector_class(service: str) -> type[Connector]:
    """The Connector class of ``service``; InvalidConfiguration if unknown or not implemented yet."""
    desc = get_service(service)
    cls = CONNECTORS.get(desc.name)
    if cls is None:
        ready = ", ".join(sorted(CONNECTORS))
        raise InvalidConfiguration(f"service {desc.name!r} ({desc.display_name}) is in the catalogue but has "
                                   f"no connector yet; implemented: {ready}", field="service")
    return cls


def build_connector(service: str, credential: ApiCredential, **kwargs: Any) -> Connector:
    """``build_connector("github", cred, app_id=..., base_url=None, transport=t, gate=g)``."""
    return connector_class(service)(credential, **kwargs)


def _check_catalogue() -> None:
    # the catalogue's ``implemented`` flags and this table must agree; a mismatch is a programming error
    flagged = {name for name, desc in SERVICES.items() if desc.implemented}
    if flagged != set(CONNECTORS):
        raise RuntimeError(f"catalogue implemented={sorted(flagged)} but connectors={sorted(CONNECTORS)}")


_check_catalogue()
