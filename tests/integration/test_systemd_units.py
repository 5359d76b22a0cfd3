"""The shipped unit files: `systemd-analyze verify` accepts them and the system service's sandbox scores
an exposure of at most 2.0 (`systemd-analyze security --offline=true`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")


def analyze(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@needs_analyze
def test_system_units_verify() -> None:
    result = analyze("verify", str(UNITS / "integd.service"), str(UNITS / "integd.socket"))
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


@needs_analyze
def test_user_units_verify(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)   # a user manager needs XDG_RUNTIME_DIR, which a CI shell may lack
    result = analyze("verify", "--user", str(UNITS / "user" / "integd.service"),
                     str(UNITS / "user" / "integd.socket"), env={"XDG_RUNTIME_DIR": str(runtime)})
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


@needs_analyze
def test_system_service_exposure_is_at_most_2() -> None:
    result = analyze("security", "--offline=true", str(UNITS / "integd.service"))
    match = re.search(r"Overall exposure level for integd\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= 2.0, result.stdout


def test_units_agree_on_paths_and_names() -> None:
    service = (UNITS / "integd.service").read_text()
    sock = (UNITS / "integd.socket").read_text()
    assert "ListenStream=/run/integd/integd.sock" in sock and "RuntimeDirectory=integd" in service
    assert "Service=integd.service" in sock and "Requires=integd.socket" in service
    assert "Type=notify" in service and "WatchdogSec=" in service
    assert "LoadCredential=master-key:" in service   # the vault looks for the credential of this name
    user_sock = (UNITS / "user" / "integd.socket").read_text()
    assert "ListenStream=%t/integd/integd.sock" in user_sock and "SocketMode=0600" in user_sock
    assert "User=" not in (UNITS / "user" / "integd.service").read_text()
