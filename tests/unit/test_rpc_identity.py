"""Peer credentials and principal resolution (integd.identity)."""

from __future__ import annotations

import grp
import os
import pwd
import socket

import pytest

from integd.identity import Peer, PeerCredentialsError, Principal, PrincipalResolver, peer_credentials


def test_peer_credentials_of_a_socketpair_are_ours() -> None:
    a, b = socket.socketpair()
    try:
        peer = peer_credentials(a)
    finally:
        a.close()
        b.close()
    assert peer == Peer(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())


def test_unconnected_socket_has_no_credentials() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        with pytest.raises(PeerCredentialsError):
            peer_credentials(s)


def test_daemon_uid_and_root_are_admin() -> None:
    resolver = PrincipalResolver(daemon_uid=4242)
    assert resolver.resolve(Peer(1, 0, 0)).kind == "admin"
    assert resolver.resolve(Peer(1, 4242, 4242)).kind == "admin"


def test_unknown_uid_gets_a_synthetic_name_and_is_a_user() -> None:
    uid = 3_999_999
    while True:  # find a uid without a passwd entry
        try:
            pwd.getpwuid(uid)
            uid += 1
        except KeyError:
            break
    principal = PrincipalResolver(daemon_uid=0).resolve(Peer(1, uid, uid))
    assert principal == Principal(uid=uid, user=f"uid:{uid}", kind="user")
    assert not principal.is_admin


def test_admin_group_membership_by_peer_gid() -> None:
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(0).gr_name
    resolver = PrincipalResolver(admin_group=group, daemon_uid=0)
    assert resolver.resolve(Peer(1, nobody.pw_uid, 0)).kind == "admin"
    assert PrincipalResolver(daemon_uid=0).resolve(Peer(1, nobody.pw_uid, nobody.pw_gid)).kind == "user"


def test_service_users_are_service_principals() -> None:
    nobody = pwd.getpwnam("nobody")
    resolver = PrincipalResolver(service_users=["nobody"], daemon_uid=0)
    principal = resolver.resolve(Peer(1, nobody.pw_uid, nobody.pw_gid))
    assert principal.kind == "service" and principal.user == "nobody"


def test_missing_admin_group_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="admin group 'no-such-group-integd' does not exist"):
        PrincipalResolver(admin_group="no-such-group-integd")


def test_service_users_must_not_be_a_bare_string() -> None:
    with pytest.raises(TypeError):
        PrincipalResolver(service_users="platform")


def test_acting_as() -> None:
    alice = Principal(uid=1000, user="alice", kind="user")
    admin = Principal(uid=0, user="root", kind="admin")
    service = Principal(uid=990, user="platform", kind="service")
    assert alice.acting_as(None) == "alice" and alice.acting_as("alice") == "alice"
    with pytest.raises(PermissionError, match="only service principals"):
        alice.acting_as("bob")
    with pytest.raises(PermissionError):
        admin.acting_as("bob")
    assert service.acting_as("bob") == "bob" and service.acting_as(None) == "platform"
    assert admin.is_admin and not service.is_admin


def test_resolution_is_cached_per_uid_and_gid() -> None:
    resolver = PrincipalResolver(daemon_uid=0)
    first = resolver.resolve(Peer(10, 0, 0))
    assert resolver.resolve(Peer(11, 0, 0)) is first
