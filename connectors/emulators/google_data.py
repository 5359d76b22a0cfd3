"""The Google emulator's data: accounts, mailboxes and drives, generated deterministically from a seed and the
account (split out of google.py; the routes there read and change these).

* ``derive_account(subject)``: the Google account behind a grant subject or token.
* ``generate_mailbox(seed, account, n)`` / ``generate_drive(seed, account, n)``: ``n`` messages or files, each
  with its history or change-log entry, so a delta from any point replays exactly what happened after it.
* ``Drive.record`` appends to the change log and tells the drive's ``listeners`` (push channels,
  google_push.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .base import ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS, digest_int, pick, seeded

DATA_EPOCH = 1672531200        # 2023-01-01T00:00:00Z: generated data starts here, independent of the clock
HOUR = 3600
FOLDER = "application/vnd.google-apps.folder"
MIME_TYPES = ("application/pdf", "text/plain", "image/png", "application/vnd.google-apps.document",
              "application/vnd.google-apps.spreadsheet", "text/csv")
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(epoch * 1000) % 1000:03d}Z"


def google_id(*parts: object, length: int = 33) -> str:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest() * 2
    return "".join(ID_ALPHABET[b % 64] for b in digest[:length])


# --- data -----------------------------------------------------------------------------------------


@dataclass
class Account:
    email: str
    name: str
    permission_id: str


@dataclass
class Message:
    id: str
    thread_id: str
    internal_date: int          # epoch ms
    history_id: int
    labels: list[str]
    sender: str
    to: str
    subject: str
    body: str

    @property
    def snippet(self) -> str:
        return self.body[:100]


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)      # oldest first
    history: list[dict[str, Any]] = field(default_factory=list)  # {"id", "type", "messageId", "labelIds"}
    next_history: int = 100000

    def record(self, kind: str, message: Message) -> int:
        self.next_history += 1 + self.next_history % 3          # increasing, not contiguous, as Gmail's
        self.history.append({"id": self.next_history, "type": kind, "messageId": message.id,
                             "labelIds": list(message.labels)})
        message.history_id = self.next_history
        return self.next_history


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    created: float
    modified: float
    size: int | None
    version: int = 1
    trashed: bool = False


@dataclass
class Drive:
    root_id: str
    files: dict[str, DriveFile] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)  # {"id", "fileId", "time", "removed"}
    listeners: list[Callable[[], None]] = field(default_factory=list, repr=False)  # told of each new change

    def record(self, item: DriveFile, now: float, removed: bool = False) -> None:
        self.changes.append({"id": len(self.changes) + 1, "fileId": item.id, "time": now, "removed": removed})
        for listener in self.listeners:
            listener()


def derive_account(subject: str) -> Account:
    """The Google account behind a grant subject or token: deterministic."""
    h = digest_int("google-account", subject)
    first, last = pick(FIRST_NAMES, h), pick(LAST_NAMES, h >> 8)
    mail = f"{first.lower()}.{last.lower()}.{(h >> 16) % 1000}@example.com"
    return Account(mail, f"{first} {last}", str(10**19 + (h >> 20) % 9 * 10**18 + h % 10**18))


def generate_mailbox(seed: int, account: Account, count: int) -> Mailbox:
    rng = seeded(seed, "gmail", account.email)
    box = Mailbox()
    thread = ""
    for n in range(count):
        if n % 3 == 0 or not thread:
            thread = google_id("thread", account.email, n, length=16).lower()
        sent = n % 7 == 6
        other = f"{rng.choice(FIRST_NAMES).lower()}@{rng.choice(NOUNS)}.example"
        labels = ["SENT"] if sent else ["INBOX", "CATEGORY_PERSONAL"] + (["UNREAD"] if rng.random() < 0.3 else [])
        msg = Message(google_id("msg", account.email, n, length=16).lower(), thread,
                      (DATA_EPOCH + n * HOUR + rng.randrange(HOUR)) * 1000, 0, labels,
                      account.email if sent else other, other if sent else account.email,
                      f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS)} update #{n}",
                      f"Hello, this is message {n} about the {rng.choice(NOUNS)}. Regards.")
        box.messages.append(msg)
        box.record("messageAdded", msg)
    return box


def generate_drive(seed: int, account: Account, count: int) -> Drive:
    rng = seeded(seed, "drive", account.email)
    drive = Drive(google_id("root", account.email, length=19))
    folders = [drive.root_id]
    for n in range(count):
        is_folder = n % 10 == 0
        created = DATA_EPOCH + n * HOUR + rng.randrange(HOUR)
        mime = FOLDER if is_folder else rng.choice(MIME_TYPES)
        name = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}-{n}" + ("" if is_folder or "google-apps" in mime
                                                                      else "." + mime.rsplit("/", 1)[-1])
        item = DriveFile(google_id("file", account.email, n), name, mime, [rng.choice(folders)], created,
                         created + rng.randrange(90 * 24 * HOUR),
                         None if is_folder or "google-apps" in mime else rng.randrange(100, 5_000_000))
        drive.files[item.id] = item
        drive.record(item, item.modified)
        if is_folder:
            folders.append(item.id)
    return drive


# --- query parsing -----------------------------------------------------------------------------------
