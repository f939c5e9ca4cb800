"""Local credentials: argon2id passwords, TOTP second factors, one-time recovery codes.

Verification spends the same argon2 work for an unknown user as for a wrong password, so
the answer's timing does not tell which usernames exist. TOTP seeds are sealed with the KEK;
the last accepted time step is stored so a code cannot be replayed inside its window.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from zerogate.core.identity.passwords import check_new_password
from zerogate.core.sealing import SecretSealer
from zerogate.store.models import RecoveryCode, User

_hasher = PasswordHasher()  # argon2id, RFC 9106 second recommended parameters
_DUMMY_HASH = _hasher.hash("zerogate-timing-equaliser")
RECOVERY_CODES = 10
ISSUER = "zerogate"


def find_user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def set_password(user: User, password: str) -> None:
    """Apply the policy (PasswordRejected says why) and store only the argon2id hash."""
    check_new_password(password, username=user.username)
    user.password_hash = _hasher.hash(password)


def verify_password(user: User | None, password: str) -> bool:
    stored = user.password_hash if user is not None and user.password_hash else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    if stored is None or user is None or user.disabled:
        return False
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)  # parameters were raised since
    return True


def mfa_required(user: User, everyone: bool) -> bool:
    return everyone or user.mfa_required or any(group.mfa_required for group in user.groups)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)


def _matching_counter(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code matches, allowing one step of clock drift either way."""
    if not (len(code) == 6 and code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(now)
    for counter in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.generate_otp(counter), code):
            return counter
    return None


def enable_totp(user: User, sealer: SecretSealer, secret: str, code: str, now: datetime) -> bool:
    counter = _matching_counter(secret, code, now)
    if counter is None:
        return False
    user.totp_secret_sealed = sealer.seal(secret.encode())
    user.totp_enabled_at, user.totp_last_counter = now, counter
    return True


def verify_totp(user: User, sealer: SecretSealer, code: str, now: datetime) -> bool:
    if user.totp_secret_sealed is None:
        return False
    secret = sealer.open(user.totp_secret_sealed).decode()
    counter = _matching_counter(secret, code.strip(), now)
    if counter is None or (
        user.totp_last_counter is not None and counter <= user.totp_last_counter
    ):
        return False  # wrong, or a code already used (RFC 6238 §5.2)
    user.totp_last_counter = counter
    return True


def disable_totp(session: Session, user: User) -> None:
    user.totp_secret_sealed = user.totp_enabled_at = user.totp_last_counter = None
    for code in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(code)


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").lower().encode()).hexdigest()


def new_recovery_codes(session: Session, user: User) -> list[str]:
    """Replace the user's recovery codes; the plain codes exist only in the return value."""
    for old in session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)):
        session.delete(old)
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_code_hash(code)) for code in codes)
    return codes


def use_recovery_code(session: Session, user: User, code: str, now: datetime) -> bool:
    wanted = _code_hash(code.strip())
    rows = session.scalars(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).all()
    for row in rows:
        if hmac.compare_digest(row.code_hash, wanted):
            row.used_at = now
            return True
    return False
