"""Master key loading: sources, their order, file formats, modes, generation, and no secret in messages."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from integd.vault import MasterKey, MasterKeyError, generate_key_file, load_master_key

KEY = bytes(range(32))


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _secret_forms(key: bytes) -> list[str]:
    return [key.hex(), base64.b64encode(key).decode(), repr(key)[2:-1]]


def _assert_no_secret(text: str, key: bytes = KEY) -> None:
    for form in _secret_forms(key):
        assert form not in text


@pytest.mark.parametrize("content", [
    KEY,
    KEY + b"\n",
    KEY.hex().encode(),
    KEY.hex().encode() + b"\n",
    KEY.hex().upper().encode() + b"\r\n",
    base64.b64encode(KEY),
    base64.b64encode(KEY) + b"\n",
], ids=["raw", "raw+nl", "hex", "hex+nl", "HEX+crlf", "b64", "b64+nl"])
def test_key_file_formats_accepted(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "master.key", content)
    key = load_master_key(credentials_dir=None, key_file=path, state_dir=tmp_path / "state")
    assert key.key == KEY
    assert key.source == f"key file {path}"


@pytest.mark.parametrize("content", [
    KEY[:31], KEY + b"x", KEY.hex()[:-2].encode() + b"\n", ("zz" + KEY.hex()[2:]).encode(),
    base64.b64encode(KEY[:30]) + b"\n", b"!" * 44, b"", os.urandom(5000),
], ids=["31raw", "33raw", "62hex", "badhex", "b64-30", "bad-b64", "empty", "huge"])
def test_key_file_wrong_format_refused(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "master.key", content)
    with pytest.raises(MasterKeyError, match=rf"key file {path}.*expected exactly 32 raw bytes, 64 hex") as info:
        load_master_key(credentials_dir=None, key_file=path, state_dir=tmp_path)
    assert info.value.__cause__ is None  # a decoder error could quote key characters
    _assert_no_secret(str(info.value))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_too_open_key_file_refused(tmp_path: Path, mode: int) -> None:
    path = _write(tmp_path / "master.key", KEY.hex().encode(), mode)
    with pytest.raises(MasterKeyError, match=rf"mode {mode:04o} is too open; chmod 600 {path}"):
        load_master_key(credentials_dir=None, key_file=path, state_dir=tmp_path)


def test_systemd_credential_preferred_and_mode_not_checked(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    _write(creds / "master-key", KEY, 0o444)  # systemd manages the credential's mode
    other = _write(tmp_path / "master.key", os.urandom(32))
    key = load_master_key(credentials_dir=creds, key_file=other, state_dir=tmp_path / "state")
    assert key.key == KEY
    assert key.source == f"systemd credential master-key at {creds / 'master-key'}"


def test_credentials_dir_without_master_key_falls_back_to_key_file(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    _write(creds / "other-credential", b"x")
    path = _write(tmp_path / "master.key", base64.b64encode(KEY))
    assert load_master_key(credentials_dir=creds, key_file=path, state_dir=tmp_path).key == KEY


def test_configured_key_file_missing_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "master.key"
    with pytest.raises(MasterKeyError, match=rf"key file {missing} .*does not exist"):
        load_master_key(credentials_dir=None, key_file=missing, state_dir=tmp_path / "state")
    assert not (tmp_path / "state").exists()


def test_generated_in_state_dir_then_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = load_master_key(credentials_dir=None, key_file=None, state_dir=state)
    path = state / "master.key"
    assert first.source == f"generated key file {path}"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert sorted(os.listdir(state)) == ["master.key"]
    again = load_master_key(credentials_dir=None, key_file=None, state_dir=state)
    assert again.key == first.key and again.fingerprint == first.fingerprint


def test_no_generation_when_disabled(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="no master key"):
        load_master_key(credentials_dir=None, key_file=None, state_dir=tmp_path, generate=False)
    assert not (tmp_path / "master.key").exists()


def test_generate_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    key = generate_key_file(path)
    before = path.read_bytes()
    with pytest.raises(MasterKeyError, match="already exists; refusing to overwrite"):
        generate_key_file(path)
    assert path.read_bytes() == before
    assert load_master_key(credentials_dir=None, key_file=path, state_dir=tmp_path).key == key.key


def test_unreadable_and_non_regular_sources(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="not a regular file"):
        load_master_key(credentials_dir=None, key_file=tmp_path, state_dir=tmp_path)


def test_master_key_repr_and_fingerprint_hide_the_key() -> None:
    key = MasterKey(KEY, "key file /etc/integd/master.key")
    assert len(key.fingerprint) == 8 and int(key.fingerprint, 16) >= 0
    assert key.fingerprint != KEY.hex()[:8]
    for text in (repr(key), str(key)):
        _assert_no_secret(text)
        assert key.fingerprint in text and "/etc/integd/master.key" in text
    assert MasterKey(os.urandom(32), "x").fingerprint != key.fingerprint
    with pytest.raises(MasterKeyError, match="must be 32 bytes"):
        MasterKey(KEY[:16], "test")
