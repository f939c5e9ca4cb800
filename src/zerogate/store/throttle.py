"""Login throttle counters in the database (the rules are in core.identity.throttle)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from zerogate.core.identity.throttle import ThrottleState, after_failure, retry_after
from zerogate.store.models import LoginThrottle


def _state(row: LoginThrottle | None) -> ThrottleState:
    return ThrottleState(row.failures, row.last_failure) if row else ThrottleState(0, None)


def wait_needed(session: Session, keys: Sequence[str], now: datetime) -> timedelta:
    """The longest wait any of the keys still has to sit out."""
    waits = [retry_after(_state(session.get(LoginThrottle, key)), now) for key in keys]
    return max(waits, default=timedelta(0))


def record_failure(session: Session, keys: Sequence[str], now: datetime) -> None:
    for key in keys:
        row = session.get(LoginThrottle, key)
        state = after_failure(_state(row), now)
        if row is None:
            session.add(
                LoginThrottle(key=key, failures=state.failures, last_failure=state.last_failure)
            )
        else:
            row.failures, row.last_failure = state.failures, state.last_failure


def clear(session: Session, key: str) -> None:
    row = session.get(LoginThrottle, key)
    if row is not None:
        session.delete(row)
