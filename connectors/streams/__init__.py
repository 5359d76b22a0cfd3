"""Provider streams for data synchronisation: ``STREAMS[(service, stream)]`` is the Stream class.

>>> STREAMS[("github", "issues")].__name__, ("slack", "messages") in STREAMS
('GitHubIssues', True)
"""

from __future__ import annotations

from connectors.streams.base import (CursorExpired, LocalChange, Page, PushRefused, RemoteRecord, Stream,
                                     StreamError, UnsupportedChange, canonical, content_hash)
from connectors.streams.discord import DiscordMessages
from connectors.streams.dropbox import DropboxFiles
from connectors.streams.github import GitHubIssues
from connectors.streams.gitlab import GitLabIssues
from connectors.streams.hubspot import HubSpotContacts
from connectors.streams.jira import JiraIssues
from connectors.streams.google import DriveFiles, GmailMessages
from connectors.streams.pipedrive import PipedriveDeals
from connectors.streams.salesforce import SalesforceAccounts, SalesforceContacts
from connectors.streams.slack import SlackMessages

STREAMS: dict[tuple[str, str], type[Stream]] = {
    (cls.service, cls.name): cls for cls in (GitHubIssues, JiraIssues, GitLabIssues, SlackMessages, GmailMessages, DriveFiles,
                                                 PipedriveDeals, SalesforceAccounts, SalesforceContacts, HubSpotContacts,
                                                 DropboxFiles, DiscordMessages)
}

__all__ = ["STREAMS", "CursorExpired", "DiscordMessages", "DriveFiles", "DropboxFiles", "GitHubIssues", "JiraIssues", "GitLabIssues", "GmailMessages", "LocalChange", "Page", "PipedriveDeals", "PushRefused", "RemoteRecord",
           "SlackMessages", "Stream", "StreamError", "UnsupportedChange", "canonical", "content_hash"]
