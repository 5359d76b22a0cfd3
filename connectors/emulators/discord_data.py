"""The Discord emulator's model: snowflakes, users, guilds, channels and their messages (pure data, no HTTP).

Snowflakes are real ones: ``(ms - 1420070400000) << 22 | worker << 17 | increment``, so ids sort by creation
time and ``after``/``before`` compare them as integers.

>>> snowflake_ms(make_snowflake(1_700_000_000_000, 1))
1700000000000
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .base import ADJECTIVES, FIRST_NAMES, NOUNS, digest_int, pick, seeded

DISCORD_EPOCH_MS = 1_420_070_400_000
DATA_EPOCH_MS = 1_690_000_000_000


def make_snowflake(ms: int, increment: int, worker: int = 1) -> int:
    return ((ms - DISCORD_EPOCH_MS) << 22) | ((worker & 0x1F) << 17) | (increment & 0xFFF)


def snowflake_ms(snowflake: int) -> int:
    return (snowflake >> 22) + DISCORD_EPOCH_MS


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="microseconds")


@dataclass
class User:
    id: str
    username: str
    global_name: str | None
    bot: bool

    def json(self) -> dict[str, Any]:
        out = {"id": self.id, "username": self.username, "global_name": self.global_name, "discriminator": "0",
               "avatar": None, "public_flags": 0}
        return {**out, "bot": True} if self.bot else out


def derive_user(subject: str, bot: bool) -> User:
    n = digest_int("discord-user", subject)
    name = f"{pick(ADJECTIVES, n)}-{pick(NOUNS, n >> 8)}" + ("-bot" if bot else f"{n % 100}")
    return User(str(make_snowflake(DATA_EPOCH_MS - 10**10 + n % 10**9, n % 4096)), name,
                None if bot else pick(FIRST_NAMES, n >> 16), bot)


@dataclass
class Message:
    id: int
    channel_id: str
    author: User
    content: str
    edited_ms: float | None = None

    def json(self) -> dict[str, Any]:
        return {"id": str(self.id), "channel_id": self.channel_id, "type": 0, "content": self.content,
                "author": self.author.json(), "timestamp": iso(snowflake_ms(self.id)),
                "edited_timestamp": iso(self.edited_ms) if self.edited_ms is not None else None,
                "attachments": [], "embeds": [], "mentions": [], "mention_roles": [], "pinned": False,
                "mention_everyone": False, "tts": False, "flags": 0, "components": []}


@dataclass
class Channel:
    id: str
    guild_id: str
    name: str
    position: int
    ids: list[int] = field(default_factory=list)          # sorted message ids
    messages: dict[int, Message] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "type": 0, "guild_id": self.guild_id, "name": self.name, "position": self.position,
                "topic": None, "nsfw": False, "parent_id": None, "rate_limit_per_user": 0,
                "last_message_id": str(self.ids[-1]) if self.ids else None, "permission_overwrites": []}

    def add(self, message: Message) -> None:
        bisect.insort(self.ids, message.id)
        self.messages[message.id] = message

    def remove(self, message_id: int) -> Message | None:
        message = self.messages.pop(message_id, None)
        if message is not None:
            self.ids.remove(message_id)
        return message

    def page(self, *, before: int | None, after: int | None, around: int | None, limit: int) -> list[Message]:
        """Messages as the API lists them: newest first, ``limit`` of them next to the anchor."""
        if after is not None:
            start = bisect.bisect_right(self.ids, after)
            chosen = self.ids[start:start + limit]
        elif around is not None:
            mid = bisect.bisect_left(self.ids, around)
            half = limit // 2
            chosen = self.ids[max(0, mid - half):mid + limit - half]
        else:
            end = bisect.bisect_left(self.ids, before) if before is not None else len(self.ids)
            chosen = self.ids[max(0, end - limit):end]
        return [self.messages[i] for i in reversed(chosen)]


@dataclass
class Guild:
    id: str
    name: str
    channels: list[Channel]

    def partial(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "icon": None, "owner": False, "permissions": "2248473465835073",
                "features": []}


class World:
    """Every guild the emulator knows, generated from the seed; members are the bot and some users."""

    def __init__(self, seed: int, guilds: int, channels: int, messages: int) -> None:
        self.seed = seed
        self.guilds: list[Guild] = []
        self.channels: dict[str, Channel] = {}
        self.increment = 0
        rng = seeded(seed, "discord-world")
        people = [derive_user(f"member-{seed}-{i}", bot=False) for i in range(5)]
        for g in range(guilds):
            gid = str(make_snowflake(DATA_EPOCH_MS - 10**9 + g * 1000, g))
            chans = []
            for c in range(channels):
                cid = str(make_snowflake(DATA_EPOCH_MS - 10**8 + g * 100 + c, c))
                channel = Channel(cid, gid, f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}", c)
                for m in range(messages):
                    ms = DATA_EPOCH_MS + (g * channels + c) * 10**7 + m * 60_000
                    author = people[rng.randrange(len(people))]
                    channel.add(Message(make_snowflake(ms, self._next()), cid, author,
                                        f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} #{m}"))
                chans.append(channel)
                self.channels[cid] = channel
            self.guilds.append(Guild(gid, f"{rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()}", chans))

    def _next(self) -> int:
        self.increment += 1
        return self.increment

    def new_id(self, now_ms: float) -> int:
        """A fresh snowflake at ``now_ms``, never below an existing one (a test clock may lag the data)."""
        newest = max((c.ids[-1] for c in self.channels.values() if c.ids), default=0)
        return max(make_snowflake(int(now_ms), self._next()), newest + (1 << 22))
