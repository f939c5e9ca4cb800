"""Audit events and their hash chain: the tamper-evident record of everything that happened.

Theory of operation: every event gets a sequence number and a hash over (previous hash,
sequence number, canonical JSON of the event). Changing, removing or reordering any stored
event breaks every hash after it, which `verify_chain` finds. The store assigns sequence
numbers under a lock; this module only computes and checks.

Invariants:
1. The canonical form is deterministic: sorted keys, no insignificant white space, UTC
   timestamps with microseconds, so two replicas hash the same event the same way.
2. Action codes are stable strings, never renamed: old chains must keep verifying.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

GENESIS_HASH = "0" * 64


class AuditAction(enum.StrEnum):
    CREATE = "inventory.create"
    UPDATE = "inventory.update"
    DELETE = "inventory.delete"
    IMPORT = "inventory.import"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    TOKEN_REJECTED = "token.rejected"
    CERT_ISSUE = "pki.issue"
    CERT_RENEW = "pki.renew"
    CERT_REVOKE = "pki.revoke"
    CA_CREATE = "pki.ca_create"
    BOOTSTRAP = "system.bootstrap"
    LOGIN_SUCCESS = "login.success"
    LOGIN_FAILURE = "login.failure"
    LOGIN_THROTTLED = "login.throttled"
    MFA_SUCCESS = "login.mfa.success"
    MFA_FAILURE = "login.mfa.failure"
    RECOVERY_CODE_USED = "login.recovery_code"
    SSO_SUCCESS = "login.sso.success"
    SSO_FAILURE = "login.sso.failure"
    MFA_ENROLL = "credential.mfa_enroll"
    MFA_DISABLE = "credential.mfa_disable"
    PASSWORD_SET = "credential.password_set"
    SESSION_CREATE = "session.create"
    SESSION_REVOKE = "session.revoke"
    LOGOUT = "session.logout"
    LOGOUT_EVERYWHERE = "session.logout_everywhere"
    SIGNING_KEY_ROTATE = "token.signing_key_rotate"
    DEVICE_APPROVE = "login.device.approve"
    DEVICE_DENY = "login.device.deny"
    POLICY_PUSH = "policy.push"
    ACCESS_DECISION = "access.decision"  # a gateway's decision on one request or connection
    POSTURE_REJECTED = "device.posture_rejected"
    CONNECTOR_TOKEN = "connector.enrollment_token"
    CONNECTOR_ENROLL = "connector.enroll"
    CONNECTOR_REJECTED = "connector.rejected"  # a failed enrollment or certificate check
    CONNECTOR_REVOKE = "connector.revoke"
    # A gateway worker's audit spool stopped taking events (it refuses requests), or took
    # them again: reported by the gateway (`core.spool_report`), recorded by the control plane.
    GATEWAY_REFUSING = "gateway.refusing"
    GATEWAY_ACCEPTING = "gateway.accepting"
    # A gateway's token sent events or a report naming another gateway (refused, all of them).
    GATEWAY_MISNAMED = "gateway.misnamed"


# The media type of an ingest body that holds one event per line, each in the canonical form
# (`canonical_parts`): what gateways send when the control plane lists it in `Accept-Post`.
LINES_MEDIA_TYPE = "application/x-ndjson"


def is_access_decision(action: str) -> bool:
    """Traffic, not a change of state: the only events a gateway may send."""
    return action.startswith("access.")


def moves_state(action: str) -> bool:
    """A change to the inventory, identities or policy, which moves the policy snapshot's
    serial; not traffic, nor a gateway's report of its own health."""
    return not action.startswith(("access.", "gateway."))


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One thing that happened: who did what to which object, and the result."""

    event_id: str
    time: datetime
    actor: str
    action: str
    target: str
    outcome: Outcome = Outcome.SUCCESS
    details: Mapping[str, object] = field(default_factory=dict)


# One encoder for every event (`json.dumps` with options builds one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
# For containers, `JSONEncoder.encode` builds CPython's C encoder afresh on every call; made
# once here with the very same options, it writes the same text for a fraction of the cost.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_ENCODE_CONTAINER: Callable[[object], str] = (
    _CANONICAL.encode
    if _C_ENCODER is None
    else functools.partial(
        lambda encoder, value: "".join(encoder(value, 0)),
        _C_ENCODER(
            {}, str, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, True
        ),
    )
)


# orjson writes the same compact, sorted JSON as `_ENCODE_CONTAINER` an order of magnitude
# faster (it is most of what storing a gateway's event costs), except where the two spell a
# value differently: non-ASCII and DEL (orjson writes them raw, the json module escapes them),
# and small floats (orjson 0.00001 and 1e-7, the json module 1e-05 and 1e-07). Its output is
# used only when it holds none of those; anything else, and anything but plain JSON values
# (a datetime, a dataclass, a subclass: `_not_plain` refuses them), takes the json module.
# A property test holds the two equal.
_FAST_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# A float's exponent follows a digit; "page-1" in a string is no alarm. The plain search
# first: `re` finds a literal faster than `in` does, and far faster than the class.
_MINUS_EXPONENT = re.compile(rb"e-")
_ONE_DIGIT_EXPONENT = re.compile(rb"[0-9]e-[0-9](?![0-9])")


def _not_plain(value: object) -> object:
    raise TypeError(type(value).__name__)


def encode_details(details: Mapping[str, object]) -> str:
    """The canonical JSON of an event's details: sorted keys, no spaces, ASCII only."""
    try:
        fast = orjson.dumps(details, default=_not_plain, option=_FAST_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is one: not plain JSON, or too deep
        return _ENCODE_CONTAINER(details)
    if not orjson_wrote_canonical(fast):
        return _ENCODE_CONTAINER(details)
    return fast.decode("ascii")


def orjson_wrote_canonical(fast: bytes) -> bool:
    """Whether orjson's sorted, compact JSON of plain values is also the canonical text: it
    holds none of the spellings where orjson and the json module differ (see above). It may
    answer False for text that is canonical after all (a string holding "0.0000"), never True
    for text that is not."""
    # Byte tests first, each a single C scan; the regular expression only when one may match.
    return not (
        not fast.isascii()
        or b"\x7f" in fast
        or b"0.0000" in fast
        or (
            _MINUS_EXPONENT.search(fast) is not None
            and _ONE_DIGIT_EXPONENT.search(fast) is not None
        )
    )


def canonical(record: AuditRecord) -> bytes:
    return canonical_parts(record)[0]


def canonical_parts(record: AuditRecord) -> tuple[bytes, str]:
    """The canonical bytes of `record`, and the JSON of its details inside them.

    The bytes are exactly `json.dumps` of the event's fields with sorted keys and no spaces,
    written out key by key so that the details' JSON, the costly part, is made once: the store
    keeps that very text in its details column instead of encoding the details again.
    """
    # For a string, `JSONEncoder.encode` is this C function behind a Python call.
    encode = json.encoder.encode_basestring_ascii
    details = encode_details(record.details)
    text = (
        f'{{"action":{encode(record.action)},"actor":{encode(record.actor)},'
        f'"details":{details},"event_id":{encode(record.event_id)},'
        f'"outcome":{encode(str(record.outcome))},"target":{encode(record.target)},'
        f'"time":"{canonical_time(record.time)}"}}'
    )
    return text.encode(), details


class Canonical(NamedTuple):
    """An event ready for the chain: the fields the store keeps in columns, the canonical
    JSON of its details (the text the store keeps) and the canonical bytes of the whole event
    (what the chain hashes). Made once per event: by `canonicalise`, or by the ingest fast
    path straight from a gateway's line, which is already in this form. A named tuple: made
    for every ingested event, it costs a third of a frozen dataclass."""

    event_id: str
    time: datetime
    actor: str
    action: str
    target: str
    outcome: Outcome
    details: str
    text: bytes
    gateway: str | None = None  # the gateway its details name, if they name one


def named_gateway(details: Mapping[str, object]) -> str | None:
    named = details.get("gateway")
    return named if type(named) is str else None


def canonicalise(record: AuditRecord) -> Canonical:
    text, details = canonical_parts(record)
    return Canonical(
        event_id=record.event_id,
        time=record.time,
        actor=record.actor,
        action=record.action,
        target=record.target,
        outcome=record.outcome,
        details=details,
        text=text,
        gateway=named_gateway(record.details),
    )


def canonical_time(when: datetime) -> str:
    """UTC, six fractional digits, "Z": `strftime("%Y-%m-%dT%H:%M:%S.%fZ")`, which pads no
    year below 1000; `isoformat`, cheaper, pads them, so it serves the rest."""
    utc = when.astimezone(UTC)
    if utc.year < 1000:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def chain_hash(previous: str, seq: int, record: AuditRecord) -> str:
    return chain_hash_of(previous, seq, canonical(record))


def chain_hash_of(previous: str, seq: int, canonical_bytes: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(previous.encode())
    digest.update(seq.to_bytes(8, "big"))
    digest.update(canonical_bytes)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainedRecord:
    seq: int
    record: AuditRecord
    prev_hash: str
    hash: str


def verify_chain(
    entries: Iterable[ChainedRecord], start_hash: str = GENESIS_HASH, start_seq: int = 1
) -> int | None:
    """The sequence number of the first entry that does not fit the chain, or None if all do.

    A missing entry is reported by the sequence number that should have been there.
    """
    previous, expected_seq = start_hash, start_seq
    for entry in entries:
        if entry.seq != expected_seq:
            return expected_seq
        if (
            entry.prev_hash != previous
            or chain_hash(previous, entry.seq, entry.record) != entry.hash
        ):
            return entry.seq
        previous, expected_seq = entry.hash, entry.seq + 1
    return None
