"""Provider streams for data synchronisation: ``STREAMS[(service, stream)]`` is the Stream class.

>>> sorted(STREAMS)
[('github', 'issues'), ('slack', 'messages')]
"""

from __future__ import annotations

from connectors.streams.base import (CursorExpired, LocalChange, Page, PushRefused, RemoteRecord, Stream,
                                     StreamError, UnsupportedChange, canonical, content_hash)
from connectors.streams.github import GitHubIssues
from connectors.streams.slack import SlackMessages

STREAMS: dict[tuple[str, str], type[Stream]] = {
    (cls.service, cls.name): cls for cls in (GitHubIssues, SlackMessages)
}

__all__ = ["STREAMS", "CursorExpired", "GitHubIssues", "LocalChange", "Page", "PushRefused", "RemoteRecord",
           "SlackMessages", "Stream", "StreamError", "UnsupportedChange", "canonical", "content_hash"]
