"""The Dropbox emulator's model: one account's files and folders, its change log and its cursors.

Pure data and logic, no HTTP (connectors.emulators.dropbox serves it). Paths are case-insensitive as on
Dropbox: entries are keyed by ``path_lower`` and keep their ``path_display``. Every change appends
``(seq, path_lower)`` to the log; a delta cursor is a position in it, so ``list_folder/continue`` answers the
latest state of each path changed since (a file, a folder, or a ``deleted`` entry when the path is gone).
The log keeps ``retention`` changes: a cursor from before that has been reset (the ``reset`` error).

Cursor payload (opaque to clients, base64 JSON): ``{"a": account, "p": path, "r": recursive, "d":
include_deleted, "s": seq the listing started at, "o": offset while the first listing pages, else null}``.

>>> fs = FileSystem("dbid:AAA", seed=1); meta = fs.put("/Notes/a.txt", b"hello", now=1_700_000_000.0)
>>> meta["path_display"], meta[".tag"], fs.get("/notes/A.TXT")["rev"] == meta["rev"]
('/Notes/a.txt', 'file', True)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .base import decode_cursor, digest_int, encode_cursor

CURSOR_PREFIX = "dbx1:"
BLOCK = 4 * 1024 * 1024
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def content_hash(data: bytes) -> str:
    """Dropbox's content hash: SHA-256 of the concatenated SHA-256 digests of each 4 MiB block.

    >>> content_hash(b"") == hashlib.sha256(b"").hexdigest()
    True
    """
    blocks = b"".join(hashlib.sha256(data[i:i + BLOCK]).digest() for i in range(0, len(data), BLOCK))
    return hashlib.sha256(blocks).hexdigest()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parent_of(path_lower: str) -> str:
    return path_lower.rsplit("/", 1)[0]


class CursorInvalid(ValueError):
    """A cursor that is not one of ours (400 bad input)."""


class CursorReset(ValueError):
    """A cursor older than the retained change log (409 ``reset``)."""


@dataclass
class Entry:
    kind: str                 # "file" | "folder"
    id: str
    path_display: str
    server_modified: float = 0.0
    client_modified: float = 0.0
    rev: str = ""
    content: bytes = b""

    @property
    def path_lower(self) -> str:
        return self.path_display.lower()

    def metadata(self) -> dict[str, Any]:
        base = {".tag": self.kind, "name": self.path_display.rsplit("/", 1)[1], "id": self.id,
                "path_lower": self.path_lower, "path_display": self.path_display}
        if self.kind == "folder":
            return base
        return {**base, "client_modified": iso(self.client_modified), "server_modified": iso(self.server_modified),
                "rev": self.rev, "size": len(self.content), "is_downloadable": True,
                "content_hash": content_hash(self.content)}


@dataclass(frozen=True)
class Listing:
    """The decoded state of a cursor."""

    path: str
    recursive: bool
    include_deleted: bool
    seq: int
    offset: int | None
    limit: int = 2000           # the page size asked for by list_folder, kept for every continue


class FileSystem:
    """One account's namespace. ``changed`` is set (and replaced) on every change, for longpolls."""

    def __init__(self, account_id: str, seed: int, retention: int = 10_000) -> None:
        self.account_id, self.seed, self.retention = account_id, seed, retention
        self.entries: dict[str, Entry] = {}
        self.log: list[tuple[int, str]] = []
        self.seq = 0
        self.first_kept = 1            # the oldest seq still in the log
        self._revs = 0
        self._ids = 0
        self.changed = asyncio.Event()

    # ---- writes --------------------------------------------------------------------------------------
    def _new_id(self) -> str:
        self._ids += 1
        n = digest_int(self.seed, self.account_id, "id", self._ids)
        return "id:" + "".join(ID_ALPHABET[(n >> (6 * i)) % 62] for i in range(10)) + f"{self._ids:012d}"

    def _new_rev(self) -> str:
        self._revs += 1
        return f"{0x15 + self._revs:09x}{digest_int(self.account_id, self._revs) % 16**6:06x}"

    def _record(self, path_lower: str) -> None:
        self.seq += 1
        self.log.append((self.seq, path_lower))
        if len(self.log) > self.retention:
            drop = len(self.log) - self.retention
            self.first_kept = self.log[drop][0]
            del self.log[:drop]
        self.changed.set()
        self.changed = asyncio.Event()

    def mkdirs(self, path_display: str) -> None:
        parts = [p for p in path_display.split("/") if p]
        for i in range(1, len(parts)):
            folder = "/" + "/".join(parts[:i])
            if folder.lower() not in self.entries:
                self.entries[folder.lower()] = Entry("folder", self._new_id(), folder)
                self._record(folder.lower())

    def put(self, path_display: str, content: bytes, *, now: float) -> dict[str, Any]:
        """Create or overwrite a file (parents made as needed); its metadata."""
        self.mkdirs(path_display)
        old = self.entries.get(path_display.lower())
        entry = Entry("file", old.id if old and old.kind == "file" else self._new_id(),
                      old.path_display if old else path_display, now, now, self._new_rev(), content)
        self.entries[entry.path_lower] = entry
        self._record(entry.path_lower)
        return entry.metadata()

    def delete(self, path: str) -> dict[str, Any] | None:
        """Delete a file or a folder with everything under it; the deleted entry's metadata (None: absent)."""
        entry = self.entries.get(path.lower())
        if entry is None:
            return None
        doomed = [p for p in self.entries if p == entry.path_lower or p.startswith(entry.path_lower + "/")]
        for p in doomed:
            del self.entries[p]
        self._record(entry.path_lower)       # one deleted entry: clients remove the path and its children
        return entry.metadata()

    # ---- reads ---------------------------------------------------------------------------------------
    def get(self, path: str) -> dict[str, Any] | None:
        entry = self.entries.get(path.lower())
        return entry.metadata() if entry else None

    def _inside(self, path_lower: str, listing: Listing) -> bool:
        if listing.path == "":
            return listing.recursive or parent_of(path_lower) == ""
        if not path_lower.startswith(listing.path + "/"):
            return False
        return listing.recursive or parent_of(path_lower) == listing.path

    def cursor(self, listing: Listing) -> str:
        return encode_cursor(CURSOR_PREFIX + json.dumps(
            {"a": self.account_id, "p": listing.path, "r": listing.recursive, "d": listing.include_deleted,
             "s": listing.seq, "o": listing.offset, "l": listing.limit}, separators=(",", ":")))

    def decode(self, cursor: str) -> Listing:
        payload = decode_cursor(cursor, CURSOR_PREFIX) if isinstance(cursor, str) else None
        try:
            data = json.loads(payload) if payload is not None else None
            listing = Listing(str(data["p"]), bool(data["r"]), bool(data["d"]), int(data["s"]),
                              None if data["o"] is None else int(data["o"]), int(data.get("l", 2000)))
        except (ValueError, TypeError, KeyError):
            raise CursorInvalid("invalid cursor") from None
        if data.get("a") != self.account_id:
            raise CursorInvalid("cursor belongs to another account")
        if listing.seq < self.first_kept - 1:
            raise CursorReset("cursor is older than the retained changes")
        return listing

    def start(self, path: str, recursive: bool, include_deleted: bool, limit: int = 2000) -> Listing:
        return Listing(path.lower(), recursive, include_deleted, self.seq, 0, limit)

    def page(self, listing: Listing) -> tuple[list[dict[str, Any]], str, bool]:
        """One page after ``listing``: (entries, next cursor, has_more)."""
        limit = listing.limit
        if listing.offset is not None:
            live = sorted(p for p in self.entries if self._inside(p, listing))
            chunk = live[listing.offset:listing.offset + limit]
            more = listing.offset + limit < len(live)
            nxt = Listing(listing.path, listing.recursive, listing.include_deleted, listing.seq,
                          listing.offset + limit if more else None, limit)
            return [self.entries[p].metadata() for p in chunk], self.cursor(nxt), more
        latest: dict[str, int] = {}
        for seq, p in self.log:
            if seq > listing.seq and self._inside(p, listing):
                latest.pop(p, None)
                latest[p] = seq                     # insertion order = order of each path's last change
        items = list(latest.items())[:limit]
        out = []
        for p, _ in items:
            entry = self.entries.get(p)
            if entry is not None:
                out.append(entry.metadata())
            else:
                name = p.rsplit("/", 1)[1]
                out.append({".tag": "deleted", "name": name, "path_lower": p, "path_display": p})
        seq = items[-1][1] if len(items) < len(latest) else self.seq
        nxt = Listing(listing.path, listing.recursive, listing.include_deleted, seq, None, limit)
        return out, self.cursor(nxt), len(items) < len(latest)

    def has_changes(self, listing: Listing) -> bool:
        return any(seq > listing.seq and self._inside(p, listing) for seq, p in self.log)
