"""Login throttling: exponential back-off per account and per source address.

Theory: each key ("user:alice", "ip:198.51.100.7") keeps a failure count and the time of the
last failure. The first `FREE_FAILURES` failures cost nothing; after that every attempt must
wait 2^(n - FREE_FAILURES) seconds since the last failure, capped at `MAX_DELAY`. A success
clears the account's key. Keys exist for unknown usernames too, so a locked-out name looks
exactly like a locked-out account (no enumeration). Pure: the store keeps the counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FREE_FAILURES = 3
MAX_DELAY = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)  # a quiet hour resets the count


@dataclass(frozen=True, slots=True)
class ThrottleState:
    failures: int
    last_failure: datetime | None


def delay_for(failures: int) -> timedelta:
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(timedelta(seconds=2 ** (failures - FREE_FAILURES)), MAX_DELAY)


def current(state: ThrottleState, now: datetime) -> ThrottleState:
    if state.last_failure is not None and now - state.last_failure > FORGET_AFTER:
        return ThrottleState(0, None)
    return state


def retry_after(state: ThrottleState, now: datetime) -> timedelta:
    """How long the key must still wait before another attempt is even checked."""
    state = current(state, now)
    if state.last_failure is None:
        return timedelta(0)
    remaining = state.last_failure + delay_for(state.failures) - now
    return max(remaining, timedelta(0))


def after_failure(state: ThrottleState, now: datetime) -> ThrottleState:
    return ThrottleState(current(state, now).failures + 1, now)
