"""The key-encryption key (KEK) that protects the CA's private key at rest.

Where it sits: the control plane calls `load_or_create_kek` once at start, before it loads the
CA from the database, and passes the bytes to `CertificateAuthority.load` / `.export`. A database
dump without the KEK signs nothing; every replica given the same KEK can sign.

Source, in order: `ZEROGATE_CA_KEY` (base64 or base64url of at least 32 bytes) when set, else a
key file readable by its owner only, created with 32 random bytes on first start. The value is
never logged and never echoed in an error.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from zerogate.pki.errors import PkiError

MIN_KEK_BYTES = 32
ENV_NAME = "ZEROGATE_CA_KEY"


def load_or_create_kek(*, env_value: str | None, key_file: Path) -> bytes:
    """The raw KEK: from the environment value if given, else from (or into) `key_file`."""
    if env_value is not None:
        if not env_value.strip():
            raise PkiError(f"{ENV_NAME} is set but empty; unset it to use the key file")
        return _decode(env_value, ENV_NAME)
    try:
        return _read(key_file)
    except FileNotFoundError:
        return _create(key_file)


def check_kek(kek: bytes) -> None:
    """Refuse a KEK too short to protect the CA key (callers may build one by hand)."""
    if not isinstance(kek, bytes) or len(kek) < MIN_KEK_BYTES:
        raise PkiError(f"the key-encryption key must be at least {MIN_KEK_BYTES} bytes")


def _decode(text: str, source: str) -> bytes:
    # Accept both alphabets (`openssl rand -base64 32` and base64url) and missing padding, but
    # validate strictly: the lenient decoder silently drops stray characters, which would turn
    # a mistyped key into a different, shorter one.
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise PkiError(f"{source} is not valid base64") from None
    if len(raw) < MIN_KEK_BYTES:
        raise PkiError(f"{source} must hold at least {MIN_KEK_BYTES} random bytes, base64-encoded")
    return raw


def _read(key_file: Path) -> bytes:
    # Open first and check the mode of what was opened, so the check and the read see the same
    # file. Symlinks are followed on purpose: Kubernetes mounts secrets as symlinks.
    fd = os.open(key_file, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            raise PkiError(
                f"key file {key_file} must not be readable by group or others (chmod 600)"
            )
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise PkiError(
                f"key file {key_file} must not be writable by group or others (chmod 600)"
            )
        content = handle.read(4096)
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError:
        raise PkiError(f"key file {key_file} is not valid base64") from None
    return _decode(text, f"key file {key_file}")


def _create(key_file: Path) -> bytes:
    """Write a new random KEK so that no reader ever sees a partial file.

    The key is written to a private temporary file (O_EXCL, 0600) and published with link(),
    which fails if the name exists: two replicas starting at once agree on one key, and a crash
    leaves either no key file or a complete one.
    """
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = secrets.token_bytes(MIN_KEK_BYTES)
    temp = key_file.with_name(f".{key_file.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64encode(raw) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temp, key_file)
    except FileExistsError:  # another process won the race: use its key
        return _read(key_file)
    finally:
        temp.unlink(missing_ok=True)
    _sync_directory(key_file.parent)
    return raw


def _sync_directory(directory: Path) -> None:
    # Losing the KEK after a power cut means losing the CA, so make the new name durable.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
