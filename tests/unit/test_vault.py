"""Vault encryption: round trips, nonces, associated data, tampering, wrong keys, no secret in any message."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from integd.store.db import Database
from integd.vault import (
    VAULT_MIGRATION_SQL,
    DecryptError,
    Envelope,
    MasterKey,
    MasterKeyError,
    Vault,
    VaultError,
    generate_key_file,
)

PLAINTEXT = b"xoxb-1234-very-secret-token"


class FrozenClock:
    def now(self) -> datetime:
        return datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
async def db(tmp_path: Path):
    database = await Database.open(tmp_path / "vault.db", [(1, VAULT_MIGRATION_SQL)])
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def master(tmp_path: Path) -> MasterKey:
    return generate_key_file(tmp_path / "keys" / "master.key")


@pytest.fixture
async def vault(db: Database, master: MasterKey) -> Vault:
    return await Vault.open(db, master, FrozenClock())


def _assert_nothing_secret(text: str, *secrets: bytes) -> None:
    for secret in secrets:
        for form in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)[2:-1]):
            assert form not in text, "a secret leaked into a message"


def _chain(exc: BaseException) -> str:
    parts = []
    while exc is not None:
        parts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


async def test_round_trip_and_json(vault: Vault) -> None:
    blob = vault.encrypt(PLAINTEXT, purpose="token", row_id="app-1")
    assert vault.decrypt(blob, purpose="token", row_id="app-1") == PLAINTEXT
    assert vault.key_id_of(blob) == vault.current_key_id
    obj = {"access_token": "a", "refresh_token": "r", "n": 3}
    sealed = vault.encrypt_json(obj, purpose="oauth", row_id="app-1")
    assert vault.decrypt_json(sealed, purpose="oauth", row_id="app-1") == obj
    assert vault.decrypt(vault.encrypt(b"", purpose="p", row_id="r"), purpose="p", row_id="r") == b""


async def test_envelope_layout(vault: Vault) -> None:
    blob = vault.encrypt(PLAINTEXT, purpose="token", row_id="app-1")
    assert blob[:1] == b"\x01"
    assert blob[1:17].decode("ascii") == vault.current_key_id and len(vault.current_key_id) == 16
    assert len(blob) == 1 + 16 + 12 + len(PLAINTEXT) + 16
    envelope = Envelope.parse(blob)
    assert envelope.to_bytes() == blob and envelope.nonce == blob[17:29]
    assert PLAINTEXT not in blob


async def test_nonce_differs_every_time(vault: Vault) -> None:
    blobs = [vault.encrypt(PLAINTEXT, purpose="token", row_id="app-1") for _ in range(50)]
    assert len({Envelope.parse(b).nonce for b in blobs}) == 50
    assert len(set(blobs)) == 50


@pytest.mark.parametrize("purpose,row_id", [("token", "app-2"), ("refresh", "app-1"), ("token", "app-1 ")])
async def test_moved_ciphertext_fails(vault: Vault, purpose: str, row_id: str) -> None:
    blob = vault.encrypt(PLAINTEXT, purpose="token", row_id="app-1")
    with pytest.raises(DecryptError, match=rf"credential {purpose} {row_id}.*wrong key or corrupt vault entry"):
        vault.decrypt(blob, purpose=purpose, row_id=row_id)


async def test_every_flipped_byte_fails(vault: Vault) -> None:
    blob = vault.encrypt(PLAINTEXT, purpose="token", row_id="app-1")
    for index in range(len(blob)):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptError):
            vault.decrypt(bytes(tampered), purpose="token", row_id="app-1")


@pytest.mark.parametrize("blob,message", [
    (b"", "too short"),
    (b"\x02" + b"0" * 16 + b"n" * 12 + b"t" * 16, "envelope version 2"),
    (b"\x01" + b"XYZ!" * 4 + b"n" * 12 + b"t" * 16, "malformed key id"),
    (b"\x01" + b"0123456789abcdef" + b"n" * 12 + b"t" * 16, "does not hold"),
    ("not bytes", "must be bytes"),
])
async def test_malformed_envelopes(vault: Vault, blob, message: str) -> None:
    with pytest.raises(DecryptError, match=message):
        vault.decrypt(blob, purpose="token", row_id="app-1")


async def test_bad_arguments(vault: Vault) -> None:
    with pytest.raises(ValueError, match="purpose"):
        vault.encrypt(b"x", purpose="a:b", row_id="r")
    with pytest.raises(ValueError, match="row_id"):
        vault.encrypt(b"x", purpose="p", row_id="")
    with pytest.raises(TypeError, match="bytes"):
        vault.encrypt("text", purpose="p", row_id="r")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict"):
        vault.encrypt_json(["x"], purpose="p", row_id="r")  # type: ignore[arg-type]
    not_json = vault.encrypt(PLAINTEXT, purpose="p", row_id="r")
    with pytest.raises(DecryptError, match="not a JSON object") as info:
        vault.decrypt_json(not_json, purpose="p", row_id="r")
    assert PLAINTEXT.decode() not in _chain(info.value)


async def test_wrong_master_key_names_source_and_database(tmp_path: Path, db: Database, vault: Vault) -> None:
    keys_before = [tuple(r) for r in await db.fetchall("SELECT * FROM vault_keys")]
    wrong = generate_key_file(tmp_path / "other" / "master.key")
    with pytest.raises(MasterKeyError) as info:
        await Vault.open(db, wrong)
    message = str(info.value)
    assert f"generated key file {tmp_path / 'other' / 'master.key'}" in message
    assert wrong.fingerprint in message and str(db.path) in message
    assert "start with the key it was created with" in message
    _assert_nothing_secret(_chain(info.value), wrong.key)
    assert [tuple(r) for r in await db.fetchall("SELECT * FROM vault_keys")] == keys_before


async def test_reopen_keeps_the_same_data_key(db: Database, master: MasterKey, vault: Vault) -> None:
    blob = vault.encrypt(PLAINTEXT, purpose="token", row_id="app-1")
    again = await Vault.open(db, master)
    assert again.current_key_id == vault.current_key_id
    assert again.decrypt(blob, purpose="token", row_id="app-1") == PLAINTEXT
    rows = await db.fetchall("SELECT key_id, created_at, retired_at FROM vault_keys")
    assert [tuple(r) for r in rows] == [(vault.current_key_id, "2024-05-01T12:00:00.000000+00:00", None)]


async def test_open_without_vault_table(tmp_path: Path, master: MasterKey) -> None:
    bare = await Database.open(tmp_path / "bare.db", [])
    try:
        with pytest.raises(VaultError, match="VAULT_MIGRATION_SQL"):
            await Vault.open(bare, master)
    finally:
        await bare.close()


async def test_no_secret_in_any_message_or_repr(db: Database, master: MasterKey, vault: Vault) -> None:
    blob = vault.encrypt(PLAINTEXT, purpose="token", row_id="app-1")
    deks = [row["wrapped"] for row in await db.fetchall("SELECT wrapped FROM vault_keys")]
    texts = [repr(vault), str(vault), repr(master), str(master), repr(Envelope.parse(blob))]
    for attempt in (lambda: vault.decrypt(blob, purpose="token", row_id="app-2"),
                    lambda: vault.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), purpose="token", row_id="app-1"),
                    lambda: vault.decrypt_json(blob, purpose="token", row_id="app-1")):
        with pytest.raises(DecryptError) as info:
            attempt()
        texts.append(_chain(info.value))
    for internal in vault._keys.values():  # the data keys themselves, read only to search for them
        texts.append(repr(internal))
        deks.append(internal.dek)
    joined = "\n".join(texts)
    _assert_nothing_secret(joined, master.key, *deks)
    assert PLAINTEXT.decode() not in joined and PLAINTEXT.hex() not in joined


def test_random_keys_differ() -> None:
    assert MasterKey(os.urandom(32), "a").fingerprint != MasterKey(os.urandom(32), "b").fingerprint
