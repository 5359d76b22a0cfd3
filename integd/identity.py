"""Who is calling: peer credentials from the kernel and the principal they map to.

Trust model: the ONLY thing trusted is the kernel's ``SO_PEERCRED`` answer for a connected AF_UNIX stream
socket (the uid/gid the peer had when it called ``connect()``). Nothing the client says about itself - a
header, a param, a user name - is believed. Authorisation is by uid (a pid can be reused), and a uid maps
to a :class:`Principal`:

    service  the uid's user name is listed in ``service_users`` (the platform's backend): may act for any
             domain user by naming it in a call
    admin    uid 0, the daemon's own uid, or a member of ``admin_group`` (supplementary or primary group,
             or the peer's gid at connect time): sees everything, acts as itself
    user     anyone else who can open the socket (mode 0660 decides that): acts as itself

An explicit ``service_users`` entry wins over the implicit admin rules, so a service running as the
daemon's own uid is still a service principal.

Exceptions: :class:`PeerCredentialsError` (an ``OSError``) when the kernel gives no credentials;
``PermissionError`` from :meth:`Principal.acting_as` when a non-service principal names another user;
``ValueError`` from :class:`PrincipalResolver` for an admin group that does not exist.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

_UCRED = struct.Struct("iII")  # pid_t, uid_t, gid_t: ids are unsigned (nobody may be 4294967294)


class PeerCredentialsError(OSError):
    """The kernel did not give credentials for this socket (not AF_UNIX, not connected, or closed)."""


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a Unix socket, as the kernel saw it at ``connect()``."""

    pid: int
    uid: int
    gid: int


PrincipalKind = Literal["user", "admin", "service"]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an RPC.

    Example:
        >>> Principal(uid=1000, user="alice", kind="user").acting_as(None)
        'alice'
        >>> Principal(uid=990, user="platform", kind="service").acting_as("bob")
        'bob'
    """

    uid: int
    user: str
    kind: PrincipalKind

    @property
    def is_admin(self) -> bool:
        """True for an admin principal (sees every user's apps)."""
        return self.kind == "admin"

    def acting_as(self, user: str | None) -> str:
        """The domain user id this call acts for.

        A service principal may name any user; everyone else (admins included) may name only
        themselves, else ``PermissionError``.
        """
        if user is None or user == self.user:
            return self.user
        if self.kind == "service":
            if not isinstance(user, str) or not user:
                raise ValueError("the user to act for must be a non-empty string")
            return user
        raise PermissionError(
            f"principal {self.user!r} (uid {self.uid}) may not act for user {user!r}: "
            "only service principals may act for another user"
        )


def peer_credentials(sock: socket.socket) -> Peer:
    """Read SO_PEERCRED of a connected AF_UNIX stream socket.

    Example:
        >>> a, b = socket.socketpair()
        >>> peer_credentials(a).uid == os.getuid()
        True
        >>> a.close(); b.close()
    """
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError as exc:
        raise PeerCredentialsError(exc.errno, f"cannot read peer credentials: {exc.strerror}") from exc
    if len(raw) != _UCRED.size:
        raise PeerCredentialsError(f"SO_PEERCRED returned {len(raw)} bytes, expected {_UCRED.size}")
    pid, uid, gid = _UCRED.unpack(raw)
    if pid <= 0:
        # An unconnected socket answers pid 0 with the overflow ids: no peer to trust.
        raise PeerCredentialsError("socket has no connected peer")
    return Peer(pid=pid, uid=uid, gid=gid)


class PrincipalResolver:
    """Maps a :class:`Peer` to a :class:`Principal`, caching by (uid, gid) for ``ttl`` seconds.

    User and group lookups go through NSS (they may be slow with LDAP), hence the cache.

    Example:
        >>> r = PrincipalResolver(service_users=["platform"])
        >>> r.resolve(Peer(pid=1, uid=0, gid=0)).kind
        'admin'
    """

    def __init__(
        self,
        *,
        admin_group: str | None = None,
        service_users: Sequence[str] = (),
        daemon_uid: int | None = None,
        ttl: float = 30.0,
    ) -> None:
        self._admin_gid: int | None = None
        self._admin_members: frozenset[str] = frozenset()
        if admin_group is not None:
            try:
                group = grp.getgrnam(admin_group)
            except KeyError:
                raise ValueError(f"admin group {admin_group!r} does not exist") from None
            self._admin_gid = group.gr_gid
            self._admin_members = frozenset(group.gr_mem)
        if isinstance(service_users, str):
            raise TypeError("service_users must be a sequence of user names, not one string")
        self._service_users = frozenset(service_users)
        self._daemon_uid = os.getuid() if daemon_uid is None else daemon_uid
        self._ttl = ttl
        self._cache: dict[tuple[int, int], tuple[float, Principal]] = {}

    def resolve(self, peer: Peer) -> Principal:
        """The principal for ``peer`` (cached)."""
        key = (peer.uid, peer.gid)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = self._resolve_uncached(peer)
        self._cache[key] = (now + self._ttl, principal)
        return principal

    def _resolve_uncached(self, peer: Peer) -> Principal:
        try:
            entry: pwd.struct_passwd | None = pwd.getpwuid(peer.uid)
        except KeyError:
            entry = None
        name = entry.pw_name if entry is not None else f"uid:{peer.uid}"
        if entry is not None and name in self._service_users:
            kind: PrincipalKind = "service"
        elif self._is_admin(peer, entry):
            kind = "admin"
        else:
            kind = "user"
        return Principal(uid=peer.uid, user=name, kind=kind)

    def _is_admin(self, peer: Peer, entry: pwd.struct_passwd | None) -> bool:
        if peer.uid == 0 or peer.uid == self._daemon_uid:
            return True
        if self._admin_gid is None:
            return False
        if peer.gid == self._admin_gid:
            return True
        if entry is None:
            return False
        if entry.pw_name in self._admin_members or entry.pw_gid == self._admin_gid:
            return True
        try:
            return self._admin_gid in os.getgrouplist(entry.pw_name, entry.pw_gid)
        except OSError:
            return False
