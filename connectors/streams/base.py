"""The Stream interface: one provider resource read page by page from a delta cursor, and written back.

A stream never touches the store: ``pull(cursor)`` returns one :class:`Page` (records, the cursor to store WITH
those records, and whether the pass is over); the daemon's runner commits each page and its cursor in one
transaction, so whatever cursor is stored is exactly the position after the stored records. Cursors are small
JSON dicts, opaque to the runner except for two keys every stream honours:

* ``full``: true while a full refresh pass runs (every record is listed; the runner sweeps unseen ones after);
* ``pass``: a token naming the current full pass (the runner stamps it on the rows the pass saw).

Exceptions (besides the connector's own, see connectors.base)::

    StreamError                 the provider answered something a stream cannot use (names the endpoint)
     +-- CursorExpired          the delta token is too old or invalid: the runner falls back to a full resync
     +-- PushRefused            the provider refused a write (422, channel_not_found, ...): the record stays dirty
     +-- UnsupportedChange      the stream cannot express this change (e.g. deleting a Slack message)

All calls go through the app's connector with ``interactive=False``: a sync waits for the rate limits it shares
with everything else instead of failing fast.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.base import ApiRequest, ApiResponse, Connector


class StreamError(Exception):
    """A provider answer the stream cannot use."""


class CursorExpired(StreamError):
    """The stored delta position is no longer valid at the provider."""


class PushRefused(StreamError):
    """The provider refused a write; the message names the endpoint and the provider's reason."""


class UnsupportedChange(StreamError):
    """This stream cannot push that kind of change."""


def canonical(data: Any) -> str:
    """Canonical JSON: the stored form of a record's data and the input of its content hash.

    Sorted keys, no whitespace, UTF-8 text as is. orjson writes it about eight times faster than ``json.dumps``
    (0.2 ms against 1.6 ms for a page of 100 GitHub issues); what orjson refuses (integers beyond 64 bits,
    non-string keys, lone surrogates) falls back to ``json.dumps`` with the same layout.

    >>> canonical({"b": [1, 2.5, None], "a": "é"})
    '{"a":"é","b":[1,2.5,null]}'
    """
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        try:
            text.encode()
        except UnicodeEncodeError:        # a lone surrogate cannot be stored as UTF-8: keep it escaped
            return json.dumps(data, sort_keys=True, separators=(",", ":"))
        return text


def content_hash(text: str) -> str:
    """>>> content_hash(canonical({"a": 1}))
    '015abd7f5cc57a2dd94b7590f04ad808'
    """
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """A record as the provider has it: its id, data, modification time (epoch s) and tombstone flag."""

    remote_id: str
    data: dict[str, Any]
    modified: float
    deleted: bool = False


@dataclass
class Page:
    """One page of a pull: the records, the cursor after them, whether the pass is over."""

    records: list[RemoteRecord]
    cursor: dict[str, Any]
    done: bool
    not_modified: bool = False      # a conditional request answered 304: nothing changed, no quota spent
    requests: int = 1
    remaining: int | None = None    # the provider's estimate of records still to come in this pass, if any


@dataclass(frozen=True)
class LocalChange:
    """A change written through the API, to push. ``remote_id`` None creates; ``base_modified`` is the remote
    modification time the change was based on (the conflict check compares it to the provider's current one)."""

    remote_id: str | None
    data: dict[str, Any]
    base_modified: float | None = None
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Stream(ABC):
    """Base of every stream. ``resource`` names what inside the account (a repository, a channel)."""

    service: str = ""
    name: str = ""
    tombstones: bool = False          # does a delta pass report deletions? If not, only a full refresh finds them
    can_fetch: bool = False           # can it read one record (the push-time conflict check needs it)
    can_create: bool = True           # can a pushed change create a record
    can_update: bool = False          # can a pushed change edit an existing record
    can_delete: bool = False          # can a pushed change delete (or close) a record

    def __init__(self, connector: Connector, resource: str, *, page_size: int = 100) -> None:
        self.connector = connector
        self.resource = self.check_resource(resource)
        self.page_size = page_size

    @classmethod
    @abstractmethod
    def check_resource(cls, resource: str) -> str:
        """The resource, validated (raise ValueError naming what is wrong)."""

    def start_cursor(self, previous: dict[str, Any] | None, *, full: bool, pass_token: str) -> dict[str, Any]:
        """The cursor a run starts from: the stored one, or a fresh full pass."""
        if full or not previous:
            return {"full": True, "pass": pass_token}
        return previous

    @abstractmethod
    async def pull(self, cursor: dict[str, Any]) -> Page:
        """The next page after ``cursor``."""

    async def pull_threads(self, threads: list[str]) -> list[RemoteRecord]:
        """Re-read the named threads (a webhook said a reply came in) - records a delta cannot see, such as a new
        reply to an old Slack thread. Streams without threads have nothing to add."""
        return []

    async def fetch(self, remote_id: str) -> RemoteRecord | None:
        """The provider's current version of one record (None: gone)."""
        raise UnsupportedChange(f"{self.service} {self.name} cannot read a single record")

    @abstractmethod
    async def push(self, change: LocalChange) -> RemoteRecord:
        """Write ``change`` upstream; the provider's resulting record."""

    async def call(self, request: ApiRequest) -> ApiResponse:
        return await self.connector.send_request(request, interactive=False)
