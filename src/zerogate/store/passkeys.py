"""Passkeys (WebAuthn credentials) in the database.

The portal's passkey routes (zerogate.control.portal.passkeys) verify ceremonies; this module
only keeps what they produce: for each credential its id and COSE public key, both as
unpadded base64url text (the form browsers use for `PublicKeyCredential.id`, so a lookup
needs no decoding), its owner and its signature counter. The ceremonies themselves are
login flows (zerogate.store.sessions); this module only sweeps away the expired ones.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session as Db

from zerogate.store.models import LoginFlow, WebAuthnCredential

NAME_LENGTH = 100  # the column's width


def encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def for_user(db: Db, user_id: int) -> Sequence[WebAuthnCredential]:
    return db.scalars(
        select(WebAuthnCredential)
        .where(WebAuthnCredential.user_id == user_id)
        .order_by(WebAuthnCredential.created_at, WebAuthnCredential.id)
    ).all()


def find(db: Db, credential_id: str) -> WebAuthnCredential | None:
    """The credential a browser names by its base64url id, whoever owns it."""
    if not credential_id or len(credential_id) > 1024:
        return None
    return db.scalars(
        select(WebAuthnCredential).where(WebAuthnCredential.credential_id == credential_id)
    ).first()


def add(
    db: Db,
    user_id: int,
    *,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    name: str,
    now: datetime,
) -> WebAuthnCredential:
    row = WebAuthnCredential(
        user_id=user_id,
        credential_id=encode(credential_id),
        public_key=encode(public_key),
        sign_count=sign_count,
        name=name[:NAME_LENGTH],
        created_at=now,
    )
    db.add(row)
    db.flush()
    return row


def record_use(row: WebAuthnCredential, sign_count: int, now: datetime) -> None:
    row.sign_count = sign_count
    row.last_used_at = now


def remove(db: Db, row_id: int, *, user_id: int) -> WebAuthnCredential | None:
    """Delete one of `user_id`'s passkeys; someone else's id finds nothing."""
    row = db.get(WebAuthnCredential, row_id)
    if row is None or row.user_id != user_id:
        return None
    db.delete(row)
    return row


def purge_ceremonies(db: Db, kinds: Sequence[str], now: datetime) -> None:
    """Drop expired passkey ceremonies: anyone may start one, so none may linger."""
    db.execute(delete(LoginFlow).where(LoginFlow.kind.in_(kinds), LoginFlow.expires_at <= now))
