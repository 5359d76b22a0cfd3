"""Calling the daemon as another local user, for the two-uid tests.

The suite runs as root. A forked child drops to the given uid/gid and speaks raw HTTP over the Unix socket with
only the already-loaded stdlib (no exec, so it needs no access to the interpreter's files, which may sit in a
0700 home directory). The kernel then reports the child's uid through SO_PEERCRED: nothing is simulated.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any


def _child(uid: int, gid: int, path: str, payload: bytes, wfd: int) -> None:
    try:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(path)
        head = (f"POST /rpc HTTP/1.1\r\nHost: integd\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
        s.sendall(head + payload)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
        raw = b"".join(chunks)
        os.write(wfd, raw.partition(b"\r\n\r\n")[2] or b"{}")
    except BaseException as e:  # noqa: BLE001 - report anything to the parent, then leave at once
        os.write(wfd, json.dumps({"child_error": f"{type(e).__name__}: {e}"}).encode())
    finally:
        os._exit(0)


def _fork_call(uid: int, gid: int, path: str, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode()
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child(uid, gid, path, payload, wfd)
    os.close(wfd)
    out = b""
    while chunk := os.read(rfd, 65536):
        out += chunk
    os.close(rfd)
    os.waitpid(pid, 0)
    return json.loads(out)


async def call_as(uid: int, gid: int, path: str, method: str, params: dict[str, Any] | None = None) -> dict:
    """The raw JSON-RPC response object of ``method`` called by a process running as ``uid``."""
    return await asyncio.get_running_loop().run_in_executor(None, _fork_call, uid, gid, path, method, params)
