"""Token signing keys in the database: the current key, rotation, and the published set.

Private keys are stored only sealed with the KEK. Rotation adds a new current key and retires
the old one; a retired key stays in the JWKS until every token it signed has expired
(`KEEP_RETIRED`), so rotation never cuts a valid session off.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from zerogate.core.sealing import SecretSealer
from zerogate.core.tokens import (
    SigningKey,
    new_signing_key,
    signing_key_from_pem,
    signing_key_to_pem,
)
from zerogate.store.models import SigningKeyRecord

ACCESS_TOKEN_LIFETIME = timedelta(minutes=10)
KEEP_RETIRED = ACCESS_TOKEN_LIFETIME + timedelta(minutes=5)  # plus clock skew


def _load(row: SigningKeyRecord, sealer: SecretSealer) -> SigningKey:
    return signing_key_from_pem(row.kid, sealer.open(row.private_key_sealed), row.created_at)


def current(session: Session, sealer: SecretSealer, now: datetime) -> SigningKey:
    """The key that signs now; created on first use."""
    row = session.scalars(
        select(SigningKeyRecord)
        .where(SigningKeyRecord.retired_at.is_(None))
        .order_by(SigningKeyRecord.created_at.desc())
    ).first()
    if row is not None:
        return _load(row, sealer)
    return _add(session, sealer, now)


def _add(session: Session, sealer: SecretSealer, now: datetime) -> SigningKey:
    key = new_signing_key(now)
    session.add(
        SigningKeyRecord(
            kid=key.kid,
            private_key_sealed=sealer.seal(signing_key_to_pem(key)),
            created_at=now,
        )
    )
    session.flush()
    return key


def rotate(session: Session, sealer: SecretSealer, now: datetime) -> SigningKey:
    for row in session.scalars(
        select(SigningKeyRecord).where(SigningKeyRecord.retired_at.is_(None))
    ):
        row.retired_at = now
    return _add(session, sealer, now)


def published(session: Session, sealer: SecretSealer, now: datetime) -> Sequence[SigningKey]:
    """Every key whose tokens may still be alive: the current one and recently retired ones."""
    current(session, sealer, now)
    rows = session.scalars(
        select(SigningKeyRecord)
        .where(
            (SigningKeyRecord.retired_at.is_(None))
            | (SigningKeyRecord.retired_at > now - KEEP_RETIRED)
        )
        .order_by(SigningKeyRecord.created_at.desc())
    ).all()
    return [_load(row, sealer) for row in rows]
