"""The key-encryption key (KEK) that protects the CA's private key at rest.

From `ZEROGATE_CA_KEY` (base64 of at least 32 bytes) when set, else from a 0600 key file,
created on first start. The value is never logged or echoed in an error.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from zerogate.pki.errors import PkiError

MIN_BYTES = 32


def _decode(text: str, source: str) -> bytes:
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError):
        raise PkiError(f"{source} is not valid base64") from None
    if len(raw) < MIN_BYTES:
        raise PkiError(f"{source} must hold at least {MIN_BYTES} random bytes (base64)")
    return raw


def _read(key_file: Path) -> bytes:
    mode = key_file.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PkiError(f"key file {key_file} must not be readable by group or others (chmod 600)")
    return _decode(key_file.read_text(encoding="ascii"), f"key file {key_file}")


def _create(key_file: Path) -> bytes:
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = secrets.token_bytes(MIN_BYTES)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return _read(key_file)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.urlsafe_b64encode(raw).decode() + "\n")
    return raw


def load_or_create_kek(*, env_value: str | None, key_file: Path) -> bytes:
    if env_value:
        return _decode(env_value, "ZEROGATE_CA_KEY")
    if key_file.exists():
        return _read(key_file)
    return _create(key_file)
