"""The credential vault: envelope encryption with AES-256-GCM.

Key hierarchy::

    master key (KEK, 32 bytes)       systemd credential `master-key`, else the configured key file, else a
        |                            generated 0600 file in the state directory. Never stored in the database.
        | wraps (AES-256-GCM, AAD = b"integd:v1:dek:" + key_id)
        v
    data keys (DEKs, 32 bytes)       table vault_keys(key_id, wrapped, created_at, retired_at); one is current
        |
        | encrypts (AES-256-GCM, AAD = b"integd:v1:" + purpose + b":" + row_id, fresh 12-byte nonce)
        v
    credentials                      envelope = 0x01 | key_id (16 hex chars) | nonce (12) | ciphertext+tag

Why two levels: `rotate` makes a new DEK and re-encrypts every credential inside one transaction (the old DEK
is retired, then deleted once nothing references it), and `rewrap` replaces the master key by re-wrapping the
few DEKs only, without touching a single credential.

Trust model: whoever holds the master key and the database file can read every credential; either one alone
reveals nothing. The row's identity is the associated data, so a ciphertext copied to another row (or used for
another purpose) fails to decrypt instead of leaking into the wrong place.

Exceptions (no message, repr or log line ever carries key material or plaintext)::

    VaultError
     +-- MasterKeyError    master key missing, unreadable, malformed, too widely readable, or not the one this
     |                     vault was created with; the message names the key's source and what to do
     +-- DecryptError      an envelope that is malformed, uses an unknown key, or fails authentication
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiosqlite
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from integd.store.db import Database

VAULT_MIGRATION_SQL = """
CREATE TABLE vault_keys (
    key_id     TEXT PRIMARY KEY,
    wrapped    BLOB NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT
);
"""

KEY_SIZE = 32
NONCE_SIZE = 12
KEY_ID_SIZE = 16
TAG_SIZE = 16
ENVELOPE_VERSION = b"\x01"
CREDENTIAL_NAME = "master-key"
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_KEY_FILE = 4096
_FORMATS = "exactly 32 raw bytes, 64 hex characters or 44 base64 characters (a trailing newline is allowed)"


class VaultError(Exception):
    """Base class of vault failures; never carries key material or plaintext."""


class MasterKeyError(VaultError):
    """The master key is missing, unreadable, malformed, too widely readable, or the wrong one."""


class DecryptError(VaultError):
    """A vault entry is malformed, names an unknown key, or fails authentication."""


@dataclass(frozen=True)
class MasterKey:
    """The key-encryption key and where it came from; `repr` never shows the key.

    Example: ``MasterKey(os.urandom(32), "key file /etc/integd/master.key").fingerprint`` -> ``"3f9a0c12"``.
    """

    key: bytes = field(repr=False)
    source: str
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != KEY_SIZE:
            raise MasterKeyError(f"the master key from {self.source} must be {KEY_SIZE} bytes")
        digest = hashlib.sha256(b"integd-master-key-fingerprint" + self.key).hexdigest()
        object.__setattr__(self, "fingerprint", digest[:8])


# -- loading the master key ---------------------------------------------------------------------------------


def load_master_key(*, credentials_dir: Path | None, key_file: Path | None, state_dir: Path,
                    generate: bool = True) -> MasterKey:
    """Find the master key: systemd credential, else `key_file`, else ``<state_dir>/master.key``.

    The state-directory file is generated (0600) only when it does not exist and `generate` is true.
    A configured `key_file` that is missing is an error, never replaced by a generated key.
    Example: ``load_master_key(credentials_dir=os.environ.get("CREDENTIALS_DIRECTORY") and Path(...),
    key_file=None, state_dir=Path("/var/lib/integd"))``.
    """
    if credentials_dir is not None:
        credential = Path(credentials_dir) / CREDENTIAL_NAME
        if credential.exists():
            return _read_key_file(credential, f"systemd credential {CREDENTIAL_NAME} at {credential}",
                                  check_mode=False)
    if key_file is not None:
        key_file = Path(key_file)
        if not key_file.exists():
            raise MasterKeyError(f"key file {key_file} (vault.key_file in the config) does not exist; restore it "
                                 f"from your backup, or create a new one with `integd keys init` for a new vault")
        return _read_key_file(key_file, f"key file {key_file}", check_mode=True)
    generated = Path(state_dir) / "master.key"
    if generated.exists():
        return _read_key_file(generated, f"generated key file {generated}", check_mode=True)
    if not generate:
        raise MasterKeyError(f"no master key: no systemd credential {CREDENTIAL_NAME}, no vault.key_file "
                             f"configured and no generated key file {generated}; configure one of them")
    return generate_key_file(generated)


def generate_key_file(path: Path) -> MasterKey:
    """Write a fresh random master key (hex, mode 0600, directory 0700) to `path`; refuse to overwrite.

    Example: ``key = generate_key_file(tmp_path / "master.key")``.
    """
    path = Path(path)
    source = f"generated key file {path}"
    key = os.urandom(KEY_SIZE)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        # link() fails if `path` exists, so a key that may be the only copy is never overwritten.
        os.link(tmp, path)
        _fsync_dir(path.parent)
    except FileExistsError as exc:
        raise MasterKeyError(f"{source}: {path} already exists; refusing to overwrite it (it may be the only "
                             "copy of the key that opens your vault)") from exc
    except OSError as exc:
        raise MasterKeyError(f"{source}: cannot write it: {exc.strerror}; check that {path.parent} is "
                             "writable by the integd user") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return MasterKey(key, source)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key_file(path: Path, source: str, *, check_mode: bool) -> MasterKey:
    """Read and parse a key file, checking (through the open descriptor) that it is private."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise MasterKeyError(f"{source}: cannot open it: {exc.strerror}; it must be readable by the integd "
                             "user") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MasterKeyError(f"{source}: not a regular file; point it at a file holding the key")
        mode = stat.S_IMODE(info.st_mode)
        if check_mode and mode & 0o077:
            raise MasterKeyError(f"{source}: mode {mode:04o} is too open; chmod 600 {path}")
        data = b""
        while len(data) <= _MAX_KEY_FILE and (chunk := os.read(fd, _MAX_KEY_FILE + 1 - len(data))):
            data += chunk
    except OSError as exc:
        raise MasterKeyError(f"{source}: cannot read it: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return MasterKey(_parse_key(data, source), source)


def _parse_key(data: bytes, source: str) -> bytes:
    """Accept 32 raw bytes, 64 hex characters or base64 of 32 bytes, each with an optional newline."""
    if len(data) == KEY_SIZE:
        return data
    text = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
    try:
        if len(text) == 2 * KEY_SIZE:
            return bytes.fromhex(text.decode("ascii"))
        if len(text) == 44:
            decoded = base64.b64decode(text, validate=True)
            if len(decoded) == KEY_SIZE:
                return decoded
        elif len(text) == KEY_SIZE:
            return text
    except (ValueError, binascii.Error):
        # Deliberately no detail and no chaining: the decoder's message could quote key characters.
        raise MasterKeyError(f"{source}: the content is not valid hex or base64; expected {_FORMATS}") from None
    raise MasterKeyError(f"{source}: holds {len(data)} bytes, which is not a master key; expected {_FORMATS}")


# -- envelopes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """One encrypted value: ``0x01 | key_id (16 ASCII hex) | nonce (12) | ciphertext+tag``.

    Example: ``Envelope.parse(blob).key_id`` -> ``"9c1e0f3a5b7d2e41"``.
    """

    key_id: str
    nonce: bytes
    ciphertext: bytes = field(repr=False)

    HEADER = 1 + KEY_ID_SIZE + NONCE_SIZE

    @classmethod
    def parse(cls, blob: bytes) -> Envelope:
        """Split and validate an envelope; DecryptError if its version, key id or length is wrong."""
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise DecryptError(f"a vault entry must be bytes, not {type(blob).__name__}")
        blob = bytes(blob)
        if len(blob) < cls.HEADER + TAG_SIZE:
            raise DecryptError(f"vault entry is {len(blob)} bytes, too short to be an envelope")
        if blob[:1] != ENVELOPE_VERSION:
            raise DecryptError(f"vault entry has envelope version {blob[0]}, expected 1")
        key_id = blob[1:1 + KEY_ID_SIZE].decode("ascii", errors="replace")
        if not _KEY_ID_RE.fullmatch(key_id):
            raise DecryptError("vault entry has a malformed key id")
        return cls(key_id, blob[1 + KEY_ID_SIZE:cls.HEADER], blob[cls.HEADER:])

    def to_bytes(self) -> bytes:
        """The stored form. Example: ``Envelope.parse(b).to_bytes() == b``."""
        return ENVELOPE_VERSION + self.key_id.encode("ascii") + self.nonce + self.ciphertext


@dataclass(frozen=True)
class RotationResult:
    """What `Vault.rotate` did: the new current key, the keys it replaced, rows re-encrypted, keys deleted."""

    new_key_id: str
    old_key_ids: tuple[str, ...]
    reencrypted: int
    deleted_key_ids: tuple[str, ...] = ()


def _now_function(clock: object | None) -> Callable[[], datetime]:
    if clock is None:
        return lambda: datetime.now(timezone.utc)
    now = getattr(clock, "now", None)
    if callable(now):
        return now
    if callable(clock):
        return clock
    raise TypeError(f"clock must have a now() method or be callable; got {type(clock).__name__}")


def _dek_aad(key_id: str) -> bytes:
    return b"integd:v1:dek:" + key_id.encode("ascii")


def _wrap(master: MasterKey, key_id: str, dek: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return ENVELOPE_VERSION + nonce + AESGCM(master.key).encrypt(nonce, dek, _dek_aad(key_id))


def _unwrap(master: MasterKey, key_id: str, wrapped: bytes) -> bytes:
    """Unwrap a DEK; raises InvalidTag (wrong master key) or ValueError (malformed record)."""
    wrapped = bytes(wrapped)
    if wrapped[:1] != ENVELOPE_VERSION or len(wrapped) != 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE:
        raise ValueError("malformed wrapped data key")
    return AESGCM(master.key).decrypt(wrapped[1:1 + NONCE_SIZE], wrapped[1 + NONCE_SIZE:], _dek_aad(key_id))


def _aad(purpose: str, row_id: str) -> bytes:
    if not isinstance(purpose, str) or not purpose or ":" in purpose:
        raise ValueError(f"purpose must be a non-empty string without ':'; got {purpose!r}")
    if not isinstance(row_id, str) or not row_id:
        raise ValueError("row_id must be a non-empty string")
    return b"integd:v1:" + purpose.encode("utf-8") + b":" + row_id.encode("utf-8")


@dataclass(frozen=True)
class _DataKey:
    key_id: str
    dek: bytes = field(repr=False)
    aead: AESGCM = field(repr=False)

    @classmethod
    def of(cls, key_id: str, dek: bytes) -> _DataKey:
        return cls(key_id, dek, AESGCM(dek))


Reencrypt = Callable[[aiosqlite.Connection, "Vault"], Awaitable[int]]


class Vault:
    """Encrypts and decrypts credentials with the current data key; rotates data keys; re-wraps them.

    Example::

        db = await Database.open(path, [(1, VAULT_MIGRATION_SQL), (2, "CREATE TABLE cred (...)")])
        vault = await Vault.open(db, load_master_key(credentials_dir=None, key_file=None, state_dir=state))
        blob = vault.encrypt(b"xoxb-...", purpose="token", row_id="app-42")
        assert vault.decrypt(blob, purpose="token", row_id="app-42") == b"xoxb-..."

    `ciphertext_columns` names the (table, column) pairs holding envelopes; `rotate` deletes a retired data
    key only when none of them still references it (with none named it trusts the re-encrypt callback).
    """

    def __init__(self, db: Database, master: MasterKey, keys: dict[str, _DataKey], current_key_id: str,
                 clock: Callable[[], datetime], ciphertext_columns: Sequence[tuple[str, str]]) -> None:
        self._db = db
        self._master = master
        self._keys = keys
        self.current_key_id = current_key_id
        self._clock = clock
        self._columns = tuple(ciphertext_columns)

    def __repr__(self) -> str:
        return (f"Vault(db={str(self._db.path)!r}, master={self._master.fingerprint}, "
                f"current_key_id={self.current_key_id!r}, keys={len(self._keys)})")

    @classmethod
    async def open(cls, db: Database, master: MasterKey, clock: object | None = None, *,
                   ciphertext_columns: Sequence[tuple[str, str]] = ()) -> Vault:
        """Unwrap every data key with `master` (MasterKeyError if it is not this vault's key, nothing
        written), creating the first data key in a write transaction if there is none.

        `clock` stamps created_at/retired_at: an object with ``now() -> datetime`` (domain.clock.Clock) or a
        zero-argument callable returning a datetime; the system clock when None.
        """
        for table, column in ciphertext_columns:
            if not (_IDENTIFIER_RE.fullmatch(table) and _IDENTIFIER_RE.fullmatch(column)):
                raise ValueError(f"ciphertext column must be plain identifiers; got {table!r}.{column!r}")
        if await db.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vault_keys'") is None:
            raise VaultError(f"database {db.path} has no vault_keys table; include VAULT_MIGRATION_SQL in "
                             "its migrations")
        rows = await db.fetchall("SELECT key_id, wrapped, retired_at FROM vault_keys ORDER BY created_at, rowid")
        keys = {row["key_id"]: _DataKey.of(row["key_id"], cls._unwrap_or_refuse(master, row, db)) for row in rows}
        vault = cls(db, master, keys, "", _now_function(clock), ciphertext_columns)
        active = [row["key_id"] for row in rows if row["retired_at"] is None]
        if active:
            vault.current_key_id = active[-1]
        else:
            await vault._create_first_key()
        return vault

    @staticmethod
    def _unwrap_or_refuse(master: MasterKey, row: aiosqlite.Row, db: Database) -> bytes:
        try:
            return _unwrap(master, row["key_id"], row["wrapped"])
        except InvalidTag:
            raise MasterKeyError(f"the master key from {master.source} (fingerprint {master.fingerprint}) does "
                                 f"not match the vault in {db.path}; start with the key it was created "
                                 "with") from None
        except ValueError:
            raise MasterKeyError(f"data key {row['key_id']} in {db.path} is malformed; the vault table is "
                                 "corrupt, restore the database from a backup") from None

    async def _create_first_key(self) -> None:
        async with self._db.write() as conn:
            # Another opener may have won the race since our read: take its key rather than add a second one.
            async with conn.execute("SELECT key_id, wrapped, retired_at FROM vault_keys WHERE retired_at IS NULL "
                                    "ORDER BY created_at DESC, rowid DESC LIMIT 1") as cur:
                row = await cur.fetchone()
            if row is not None:
                key = _DataKey.of(row["key_id"], self._unwrap_or_refuse(self._master, row, self._db))
            else:
                key = await self._insert_new_key(conn)
        self._keys[key.key_id] = key
        self.current_key_id = key.key_id

    async def _insert_new_key(self, conn: aiosqlite.Connection) -> _DataKey:
        key = _DataKey.of(os.urandom(KEY_ID_SIZE // 2).hex(), AESGCM.generate_key(bit_length=256))
        await conn.execute("INSERT INTO vault_keys (key_id, wrapped, created_at) VALUES (?, ?, ?)",
                           (key.key_id, _wrap(self._master, key.key_id, key.dek), self._now()))
        return key

    def _now(self) -> str:
        now = self._clock()
        now = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)
        return now.isoformat(timespec="microseconds")

    # -- credentials ----------------------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes, *, purpose: str, row_id: str) -> bytes:
        """Seal `plaintext` for one row with the current data key. Example: see the class docstring."""
        if not isinstance(plaintext, (bytes, bytearray, memoryview)):
            raise TypeError(f"plaintext must be bytes, not {type(plaintext).__name__}")
        aad = _aad(purpose, row_id)
        key = self._keys[self.current_key_id]
        nonce = os.urandom(NONCE_SIZE)
        return Envelope(key.key_id, nonce, key.aead.encrypt(nonce, bytes(plaintext), aad)).to_bytes()

    def decrypt(self, blob: bytes, *, purpose: str, row_id: str) -> bytes:
        """Open an envelope made by `encrypt` for the same purpose and row; DecryptError otherwise."""
        aad = _aad(purpose, row_id)
        envelope = Envelope.parse(blob)
        key = self._keys.get(envelope.key_id)
        if key is None:
            raise DecryptError(f"credential {purpose} {row_id} is sealed with data key {envelope.key_id}, which "
                               "this vault does not hold: wrong database or corrupt vault entry")
        try:
            return key.aead.decrypt(envelope.nonce, envelope.ciphertext, aad)
        except InvalidTag as exc:
            raise DecryptError(f"credential {purpose} {row_id} could not be decrypted: wrong key or corrupt "
                               "vault entry") from exc

    def encrypt_json(self, obj: dict, *, purpose: str, row_id: str) -> bytes:
        """`encrypt` for a JSON object. Example: ``vault.encrypt_json({"token": t}, purpose="oauth", row_id=i)``."""
        if not isinstance(obj, dict):
            raise TypeError(f"encrypt_json takes a dict, not {type(obj).__name__}")
        data = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")
        return self.encrypt(data, purpose=purpose, row_id=row_id)

    def decrypt_json(self, blob: bytes, *, purpose: str, row_id: str) -> dict:
        """Inverse of `encrypt_json`; DecryptError if the entry is not a JSON object."""
        data = self.decrypt(blob, purpose=purpose, row_id=row_id)
        try:
            obj = json.loads(data)
        except ValueError:
            obj = None  # the decoder's exception keeps the whole plaintext in `.doc`: never chain it
        if not isinstance(obj, dict):
            raise DecryptError(f"credential {purpose} {row_id} decrypted but is not a JSON object")
        return obj

    def reseal(self, blob: bytes, *, purpose: str, row_id: str) -> bytes:
        """Decrypt with whichever key sealed it and encrypt with the current key (for `rotate` callbacks)."""
        return self.encrypt(self.decrypt(blob, purpose=purpose, row_id=row_id), purpose=purpose, row_id=row_id)

    def key_id_of(self, blob: bytes) -> str:
        """The data key id an envelope was sealed with. Example: ``vault.key_id_of(b) == vault.current_key_id``."""
        return Envelope.parse(blob).key_id

    # -- key management -------------------------------------------------------------------------------------

    async def rotate(self, conn: aiosqlite.Connection, reencrypt: Reencrypt) -> RotationResult:
        """Make a new current data key, let `reencrypt(conn, vault)` re-seal every row, retire the old keys
        and delete those no longer referenced. Runs inside the caller's ``db.write()``; on any failure (here
        or later in that transaction) the database and the in-memory keys return to their previous state.

        Example::

            async def reseal_all(conn, vault):
                rows = await conn.execute_fetchall("SELECT id, secret FROM cred")
                await conn.executemany("UPDATE cred SET secret = ? WHERE id = ?",
                                       [(vault.reseal(s, purpose="cred", row_id=i), i) for i, s in rows])
                return len(rows)

            async with db.write() as conn:
                result = await vault.rotate(conn, reseal_all)
        """
        if not self._db.in_write():
            raise VaultError("Vault.rotate must be called inside `async with db.write() as conn`")
        snapshot = (dict(self._keys), self.current_key_id)

        def restore() -> None:
            self._keys, self.current_key_id = dict(snapshot[0]), snapshot[1]

        self._db.on_rollback(restore)
        # A savepoint as well, so that a caller who catches our exception and commits anyway still gets the
        # vault table and its rows exactly as before.
        await conn.execute("SAVEPOINT integd_vault_rotate")
        try:
            result = await self._rotate_in_savepoint(conn, reencrypt)
            await conn.execute("RELEASE integd_vault_rotate")
        except BaseException:
            restore()
            await conn.execute("ROLLBACK TO integd_vault_rotate")
            await conn.execute("RELEASE integd_vault_rotate")
            raise
        for key_id in result.deleted_key_ids:
            self._keys.pop(key_id, None)
        return result

    async def _rotate_in_savepoint(self, conn: aiosqlite.Connection, reencrypt: Reencrypt) -> RotationResult:
        old_ids = tuple(row[0] for row in await conn.execute_fetchall(
            "SELECT key_id FROM vault_keys ORDER BY created_at, rowid"))
        key = await self._insert_new_key(conn)
        self._keys[key.key_id] = key
        self.current_key_id = key.key_id
        count = await reencrypt(conn, self)
        if not isinstance(count, int):
            raise TypeError(f"the reencrypt callback must return the number of rows, not {type(count).__name__}")
        await conn.execute("UPDATE vault_keys SET retired_at = ? WHERE key_id != ? AND retired_at IS NULL",
                           (self._now(), key.key_id))
        deleted = []
        for key_id in old_ids:
            if not await self._referenced(conn, key_id):
                await conn.execute("DELETE FROM vault_keys WHERE key_id = ?", (key_id,))
                deleted.append(key_id)
        return RotationResult(key.key_id, old_ids, count, tuple(deleted))

    async def _referenced(self, conn: aiosqlite.Connection, key_id: str) -> bool:
        """Does any registered ciphertext column still hold an envelope sealed with `key_id`?"""
        for table, column in self._columns:
            sql = f'SELECT 1 FROM "{table}" WHERE substr("{column}", 2, {KEY_ID_SIZE}) = ? LIMIT 1'
            async with conn.execute(sql, (key_id.encode("ascii"),)) as cur:
                if await cur.fetchone() is not None:
                    return True
        return False

    async def rewrap(self, new_master: MasterKey) -> int:
        """Re-wrap every data key under `new_master` in one write transaction; return how many.

        Afterwards only `new_master` opens the vault: install it (credential or key file) before restarting.
        Example: ``await vault.rewrap(generate_key_file(Path("/etc/integd/master.key.new")))``.
        """
        async with self._db.write() as conn:
            rows = await conn.execute_fetchall("SELECT key_id, wrapped FROM vault_keys")
            for row in rows:
                known = self._keys.get(row["key_id"])
                dek = known.dek if known else self._unwrap_or_refuse(self._master, row, self._db)
                await conn.execute("UPDATE vault_keys SET wrapped = ? WHERE key_id = ?",
                                   (_wrap(new_master, row["key_id"], dek), row["key_id"]))
            self._db.on_commit(lambda: setattr(self, "_master", new_master))
        return len(rows)

    def master_fingerprint(self) -> str:
        """Fingerprint of the master key in use, safe to log. Example: ``vault.master_fingerprint()``."""
        return self._master.fingerprint
