"""Sealing small secrets at rest (TOTP seeds, token signing keys) with the KEK.

AES-256-GCM under a key derived from the key-encryption key with HKDF, one derived key per
purpose, so a sealed TOTP seed can never be opened as a signing key. The purpose is also
bound as associated data. Output: "v1.<base64url nonce||ciphertext>".
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zerogate.pki.errors import PkiError

_PREFIX = "v1."


class Sealer:
    def __init__(self, kek: bytes, purpose: str) -> None:
        derived = HKDF(
            hashes.SHA256(), 32, salt=None, info=f"zerogate seal {purpose}".encode()
        ).derive(kek)
        self._aead = AESGCM(derived)
        self._aad = purpose.encode()

    def seal(self, secret: bytes) -> str:
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, secret, self._aad)
        return _PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, sealed: str) -> bytes:
        if not sealed.startswith(_PREFIX):
            raise PkiError("sealed value has an unknown format")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_PREFIX) :])
            return self._aead.decrypt(raw[:12], raw[12:], self._aad)
        except (InvalidTag, ValueError):
            raise PkiError(
                "sealed value cannot be opened: wrong key-encryption key or tampered"
            ) from None
