"""RFC 8628 device authorizations in the database: start, approve or deny, poll.

The device code is a 256-bit secret kept only as its SHA-256; the user code is short and
typed by a person, so it is drawn from 20 consonants (no vowels: no words, no 0/O mix-ups,
RFC 8628 §6.1), 8 characters, about 34 bits, and lives ten minutes.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from zerogate.store.models import DeviceAuthorization

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
LIFETIME = timedelta(minutes=10)
INTERVAL = 5  # seconds between polls (RFC 8628 §3.2 default)


class PollResult(enum.StrEnum):
    """RFC 8628 §3.5 error codes, and `approved`."""

    PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"
    DENIED = "access_denied"
    EXPIRED = "expired_token"
    APPROVED = "approved"


@dataclass(frozen=True, slots=True)
class Started:
    device_code: str
    user_code: str  # formatted XXXX-XXXX
    expires_in: int
    interval: int


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalise_user_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch in USER_CODE_ALPHABET)[:8]


def start(session: Session, client_id: str, now: datetime) -> Started:
    session.execute(delete(DeviceAuthorization).where(DeviceAuthorization.expires_at < now))
    device_code = secrets.token_urlsafe(32)
    user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    session.add(
        DeviceAuthorization(
            id=_digest(device_code),
            user_code=user_code,
            client_id=client_id,
            created_at=now,
            expires_at=now + LIFETIME,
            interval=INTERVAL,
        )
    )
    session.flush()
    return Started(
        device_code, f"{user_code[:4]}-{user_code[4:]}", int(LIFETIME.total_seconds()), INTERVAL
    )


def pending_by_user_code(
    session: Session, user_code: str, now: datetime
) -> DeviceAuthorization | None:
    code = normalise_user_code(user_code)
    row = session.scalars(
        select(DeviceAuthorization).where(DeviceAuthorization.user_code == code)
    ).first()
    if row is None or row.expires_at <= now or row.denied or row.approved_by is not None:
        return None
    return row


def poll(
    session: Session, device_code: str, client_id: str, now: datetime
) -> tuple[PollResult, DeviceAuthorization | None]:
    row = session.get(DeviceAuthorization, _digest(device_code))
    if row is None or row.client_id != client_id or row.redeemed:
        return PollResult.EXPIRED, None
    if row.expires_at <= now:
        return PollResult.EXPIRED, None
    if row.denied:
        return PollResult.DENIED, None
    too_soon = row.last_poll_at is not None and now - row.last_poll_at < timedelta(
        seconds=row.interval
    )
    row.last_poll_at = now
    if row.approved_by is not None:
        row.redeemed = True  # the device code works once
        return PollResult.APPROVED, row
    if too_soon:
        row.interval += 5  # §3.5: slow_down adds five seconds for the rest of this grant
        return PollResult.SLOW_DOWN, None
    return PollResult.PENDING, None
