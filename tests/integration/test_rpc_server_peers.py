"""Peer identity across uids: a client process running as another user is seen as that user.

Needs root (to run the child as uid 65534); CI runs the suite as root.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import shutil
import stat
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from integd.identity import PrincipalResolver
from integd.rpc.dispatch import Dispatcher
from integd.rpc.registry import CallContext, MethodRegistry
from integd.rpc.server import RpcServer

NOBODY_UID = 65534

# A stdlib-only HTTP client (the child may not be able to read the project's virtualenv).
CHILD = r"""
import json, socket, sys
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "whoami"}).encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"POST /rpc HTTP/1.1\r\nHost: integd\r\nContent-Type: application/json\r\n"
          b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
data = b""
while chunk := s.recv(65536):
    data += chunk
sys.stdout.write(data.split(b"\r\n\r\n", 1)[1].decode())
"""


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def world_usable(path: str) -> bool:
    """True if every directory up to ``path`` is world-searchable and the file world-executable."""
    real = Path(os.path.realpath(path))
    if not real.exists() or not os.stat(real).st_mode & stat.S_IXOTH:
        return False
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in real.parents)


def interpreter_for_nobody() -> str | None:
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if candidate and world_usable(candidate):
            return candidate
    return None


@pytest.fixture
async def shared_server() -> AsyncIterator[str]:
    reg = MethodRegistry()

    @reg.method("whoami", NoParams, dict[str, Any], summary="the caller's principal")
    async def whoami(ctx: CallContext, p: NoParams) -> dict[str, Any]:
        return {"uid": ctx.principal.uid, "user": ctx.principal.user, "kind": ctx.principal.kind}

    # A directory others may traverse (pytest's tmp_path lives under a 0700 directory).
    directory = tempfile.mkdtemp(prefix="integd-peer-")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "integd.sock")
    server = RpcServer(Dispatcher(reg), PrincipalResolver(daemon_uid=0))
    await server.start(path=path, mode=0o660)
    nobody_gid = pwd.getpwuid(NOBODY_UID).pw_gid
    os.chown(path, 0, nobody_gid)  # the 0660 socket admits the group: that is how users get access
    try:
        yield path
    finally:
        await server.stop()
        shutil.rmtree(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as uid 65534")
async def test_client_running_as_another_uid_is_resolved_as_that_uid(shared_server: str) -> None:
    python = interpreter_for_nobody()
    if python is None:
        pytest.skip("no Python interpreter that uid 65534 may execute")
    try:
        pwd.getpwuid(NOBODY_UID)
    except KeyError:
        pytest.skip("no passwd entry for uid 65534")
    gid = pwd.getpwuid(NOBODY_UID).pw_gid
    child = await asyncio.create_subprocess_exec(
        python, "-I", "-c", CHILD, shared_server, user=NOBODY_UID, group=gid, extra_groups=[],
        cwd="/", env={"PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), 20)
    assert child.returncode == 0, err.decode()
    answer = json.loads(out)
    expected_user = pwd.getpwuid(NOBODY_UID).pw_name
    assert answer["result"] == {"uid": NOBODY_UID, "user": expected_user, "kind": "user"}
    assert grp.getgrgid(gid)  # the group the socket was shared with exists


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as uid 65534")
async def test_a_user_outside_the_socket_group_cannot_connect(shared_server: str) -> None:
    python = interpreter_for_nobody()
    if python is None:
        pytest.skip("no Python interpreter that uid 65534 may execute")
    other_gid = 65533 if pwd.getpwuid(NOBODY_UID).pw_gid != 65533 else 65532
    child = await asyncio.create_subprocess_exec(
        python, "-I", "-c", CHILD, shared_server, user=NOBODY_UID, group=other_gid, extra_groups=[],
        cwd="/", env={"PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(child.communicate(), 20)
    assert child.returncode != 0 and b"PermissionError" in err
