"""The audit hash chain: any change, removal or reordering is found at the right place."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerogate.core.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditRecord,
    ChainedRecord,
    Outcome,
    canonical,
    canonical_parts,
    chain_hash,
    encode_details,
    is_access_decision,
    moves_state,
    verify_chain,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def make_record(n: int, **details: object) -> AuditRecord:
    return AuditRecord(
        event_id=f"{n:032x}",
        time=T0 + timedelta(seconds=n),
        actor=f"admin-{n % 3}",
        action=str(AuditAction.CREATE),
        target=f"app/app-{n}",
        details={"n": n, **details},
    )


def build_chain(records: list[AuditRecord], first_seq: int = 1) -> list[ChainedRecord]:
    chain, previous = [], GENESIS_HASH
    for seq, record in enumerate(records, start=first_seq):
        digest = chain_hash(previous, seq, record)
        chain.append(ChainedRecord(seq=seq, record=record, prev_hash=previous, hash=digest))
        previous = digest
    return chain


def chain_of(length: int) -> list[ChainedRecord]:
    return build_chain([make_record(n) for n in range(length)])


# --- a good chain ----------------------------------------------------------------------------


def test_intact_chain_verifies() -> None:
    chain = chain_of(10)
    assert verify_chain(chain) is None
    assert verify_chain(iter(chain)) is None  # any iterable, read once


def test_empty_chain_verifies() -> None:
    assert verify_chain([]) is None


def test_chain_links_hashes() -> None:
    chain = chain_of(3)
    assert chain[0].prev_hash == GENESIS_HASH == "0" * 64
    assert chain[1].prev_hash == chain[0].hash
    assert len({entry.hash for entry in chain}) == 3
    assert all(len(entry.hash) == 64 for entry in chain)


def test_chain_hash_is_sha256_of_previous_seq_and_canonical_form() -> None:
    record = make_record(7)
    expected = hashlib.sha256(
        GENESIS_HASH.encode() + (5).to_bytes(8, "big") + canonical(record)
    ).hexdigest()
    assert chain_hash(GENESIS_HASH, 5, record) == expected


def test_chain_hash_depends_on_seq_and_previous() -> None:
    record = make_record(1)
    base = chain_hash(GENESIS_HASH, 1, record)
    assert chain_hash(GENESIS_HASH, 2, record) != base
    assert chain_hash("1" * 64, 1, record) != base


def test_verification_can_continue_from_a_checkpoint() -> None:
    chain = chain_of(6)
    assert verify_chain(chain[3:], start_hash=chain[2].hash, start_seq=chain[3].seq) is None
    assert verify_chain(chain[3:]) == 1  # from genesis, entry 1 is missing


def test_wrong_start_hash_is_reported_at_the_first_entry() -> None:
    assert verify_chain(chain_of(3), start_hash="f" * 64) == 1


# --- tampering -------------------------------------------------------------------------------

_FIELD_CHANGES: dict[str, Any] = {
    "event_id": "f" * 32,
    "time": T0 - timedelta(days=1),
    "actor": "mallory",
    "action": str(AuditAction.DELETE),
    "target": "app/other",
    "outcome": Outcome.FAILURE,
    "details": {"n": -1},
}


@settings(max_examples=150, deadline=None, database=None)
@given(
    length=st.integers(min_value=1, max_value=12),
    data=st.data(),
    field=st.sampled_from(sorted(_FIELD_CHANGES)),
)
def test_changing_any_field_is_found_at_its_seq(
    length: int, data: st.DataObject, field: str
) -> None:
    chain = chain_of(length)
    index = data.draw(st.integers(min_value=0, max_value=length - 1), label="index")
    entry = chain[index]
    changed = dataclasses.replace(entry.record, **{field: _FIELD_CHANGES[field]})
    chain[index] = dataclasses.replace(entry, record=changed)
    assert verify_chain(chain) == entry.seq


@settings(max_examples=100, deadline=None, database=None)
@given(length=st.integers(min_value=1, max_value=12), data=st.data())
def test_changing_a_detail_value_is_found(length: int, data: st.DataObject) -> None:
    chain = chain_of(length)
    index = data.draw(st.integers(min_value=0, max_value=length - 1), label="index")
    value = data.draw(st.text(max_size=5) | st.integers() | st.booleans(), label="value")
    entry = chain[index]
    details = {**entry.record.details, "extra": value}
    chain[index] = dataclasses.replace(
        entry, record=dataclasses.replace(entry.record, details=details)
    )
    assert verify_chain(chain) == entry.seq


@settings(max_examples=100, deadline=None, database=None)
@given(length=st.integers(min_value=1, max_value=12), data=st.data())
def test_rewriting_a_stored_hash_is_found(length: int, data: st.DataObject) -> None:
    chain = chain_of(length)
    index = data.draw(st.integers(min_value=0, max_value=length - 1), label="index")
    which = data.draw(st.sampled_from(["hash", "prev_hash"]), label="which")
    entry = chain[index]
    forged: dict[str, Any] = {which: "a" * 64}
    chain[index] = dataclasses.replace(entry, **forged)
    assert verify_chain(chain) == entry.seq


@settings(max_examples=100, deadline=None, database=None)
@given(length=st.integers(min_value=3, max_value=12), data=st.data())
def test_deleting_a_middle_record_reports_its_seq(length: int, data: st.DataObject) -> None:
    chain = chain_of(length)
    index = data.draw(st.integers(min_value=1, max_value=length - 2), label="index")
    removed = chain.pop(index)
    assert verify_chain(chain) == removed.seq


def test_deleting_the_first_record_is_found() -> None:
    chain = chain_of(4)
    del chain[0]
    # the chain starts at seq 1, so the missing first entry is reported as 1
    assert verify_chain(chain) == 1


def test_deleting_the_last_record_is_invisible_to_the_chain_alone() -> None:
    # Truncation leaves a valid prefix; the store's head row is what catches it.
    assert verify_chain(chain_of(4)[:-1]) is None


@settings(max_examples=150, deadline=None, database=None)
@given(length=st.integers(min_value=3, max_value=12), data=st.data())
def test_swapping_two_entries_reports_the_earlier_seq(length: int, data: st.DataObject) -> None:
    chain = chain_of(length)
    i = data.draw(st.integers(min_value=1, max_value=length - 2), label="i")
    j = data.draw(st.integers(min_value=i + 1, max_value=length - 1), label="j")
    expected = chain[i].seq
    chain[i], chain[j] = chain[j], chain[i]
    assert verify_chain(chain) == expected


@settings(max_examples=150, deadline=None, database=None)
@given(length=st.integers(min_value=2, max_value=12), data=st.data())
def test_swapping_two_stored_events_reports_the_earlier_seq(
    length: int, data: st.DataObject
) -> None:
    """What a database edit does: rows keep their seq and hashes, the events trade places."""
    chain = chain_of(length)
    i = data.draw(st.integers(min_value=0, max_value=length - 2), label="i")
    j = data.draw(st.integers(min_value=i + 1, max_value=length - 1), label="j")
    a, b = chain[i], chain[j]
    chain[i] = dataclasses.replace(a, record=b.record)
    chain[j] = dataclasses.replace(b, record=a.record)
    assert verify_chain(chain) == a.seq


def test_swapping_with_the_first_entry() -> None:
    chain = chain_of(5)
    chain[0], chain[3] = chain[3], chain[0]
    # seq 1 is expected first; finding seq 4 there reports the gap at 1
    assert verify_chain(chain) == 1


def test_renumbering_is_found() -> None:
    chain = chain_of(5)
    chain[2] = dataclasses.replace(chain[2], seq=9)
    assert verify_chain(chain) == 3


def test_a_fully_recomputed_forgery_only_holds_if_every_later_hash_is_rewritten() -> None:
    records = [make_record(n) for n in range(5)]
    chain = chain_of(5)
    records[1] = dataclasses.replace(records[1], actor="mallory")
    forged = build_chain(records)
    assert verify_chain(forged) is None  # the chain alone is not a signature
    assert verify_chain([*forged[:3], *chain[3:]]) == 4  # splicing in the old tail breaks


# --- canonical form --------------------------------------------------------------------------


def test_canonical_form_is_compact_sorted_json() -> None:
    record = AuditRecord(
        event_id="e1",
        time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        actor="admin",
        action=str(AuditAction.TOKEN_CREATE),
        target="token/abc",
        outcome=Outcome.SUCCESS,
        details={"b": 1, "a": [1, "x"]},
    )
    assert canonical(record) == (
        b'{"action":"token.create","actor":"admin","details":{"a":[1,"x"],"b":1},'
        b'"event_id":"e1","outcome":"success","target":"token/abc",'
        b'"time":"2026-01-02T03:04:05.000000Z"}'
    )


def test_canonical_time_is_utc_whatever_the_zone() -> None:
    utc = make_record(1)
    shifted = dataclasses.replace(utc, time=utc.time.astimezone(timezone(timedelta(hours=5))))
    assert canonical(shifted) == canonical(utc)
    assert b'"time":"2026-01-02T03:04:06.678901Z"' in canonical(utc)


def test_canonical_keeps_microseconds() -> None:
    record = make_record(1)
    later = dataclasses.replace(record, time=record.time + timedelta(microseconds=1))
    assert canonical(later) != canonical(record)


def test_canonical_escapes_non_ascii() -> None:
    record = dataclasses.replace(make_record(1), actor="zoë")
    assert b'"actor":"zo\\u00eb"' in canonical(record)


def test_action_codes_are_stable() -> None:
    # Old chains must keep verifying: these strings are hashed into every stored event.
    assert {action.name: action.value for action in AuditAction} == {
        "CREATE": "inventory.create",
        "UPDATE": "inventory.update",
        "DELETE": "inventory.delete",
        "IMPORT": "inventory.import",
        "TOKEN_CREATE": "token.create",
        "TOKEN_REVOKE": "token.revoke",
        "TOKEN_REJECTED": "token.rejected",
        "CERT_ISSUE": "pki.issue",
        "CERT_RENEW": "pki.renew",
        "CERT_REVOKE": "pki.revoke",
        "CA_CREATE": "pki.ca_create",
        "BOOTSTRAP": "system.bootstrap",
        "LOGIN_SUCCESS": "login.success",
        "LOGIN_FAILURE": "login.failure",
        "LOGIN_THROTTLED": "login.throttled",
        "MFA_SUCCESS": "login.mfa.success",
        "MFA_FAILURE": "login.mfa.failure",
        "RECOVERY_CODE_USED": "login.recovery_code",
        "SSO_SUCCESS": "login.sso.success",
        "SSO_FAILURE": "login.sso.failure",
        "MFA_ENROLL": "credential.mfa_enroll",
        "MFA_DISABLE": "credential.mfa_disable",
        "PASSWORD_SET": "credential.password_set",
        "SESSION_CREATE": "session.create",
        "SESSION_REVOKE": "session.revoke",
        "LOGOUT": "session.logout",
        "LOGOUT_EVERYWHERE": "session.logout_everywhere",
        "SIGNING_KEY_ROTATE": "token.signing_key_rotate",
        "DEVICE_APPROVE": "login.device.approve",
        "DEVICE_DENY": "login.device.deny",
        "POLICY_PUSH": "policy.push",
        "ACCESS_DECISION": "access.decision",
        "POSTURE_REJECTED": "device.posture_rejected",
        "CONNECTOR_TOKEN": "connector.enrollment_token",
        "CONNECTOR_ENROLL": "connector.enroll",
        "CONNECTOR_REJECTED": "connector.rejected",
        "CONNECTOR_REVOKE": "connector.revoke",
        "GATEWAY_REFUSING": "gateway.refusing",
        "GATEWAY_ACCEPTING": "gateway.accepting",
        "GATEWAY_MISNAMED": "gateway.misnamed",
    }


def test_only_changes_of_state_move_the_snapshot_serial() -> None:
    assert moves_state(AuditAction.POLICY_PUSH) and moves_state(AuditAction.LOGIN_SUCCESS)
    for traffic in (AuditAction.ACCESS_DECISION, AuditAction.GATEWAY_REFUSING):
        assert not moves_state(traffic)
    assert not is_access_decision(AuditAction.GATEWAY_REFUSING)  # no gateway may send one


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def _reordered(value: object, order: list[int]) -> object:
    """The same JSON value with every dict's insertion order permuted."""
    if isinstance(value, dict):
        keys = list(value)
        if keys:
            shift = order[len(keys) % len(order)] % len(keys)
            keys = keys[shift:] + keys[:shift]
            keys.reverse()
        return {key: _reordered(value[key], order) for key in keys}
    if isinstance(value, list):
        return [_reordered(item, order) for item in value]
    return value


@settings(max_examples=150, deadline=None, database=None)
@given(
    details=st.dictionaries(st.text(max_size=5), _json_values, max_size=6),
    order=st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=5),
)
def test_canonical_is_independent_of_key_order(
    details: dict[str, object], order: list[int]
) -> None:
    record = dataclasses.replace(make_record(1), details=details)
    again = dataclasses.replace(record, details=_reordered(details, order))  # type: ignore[arg-type]
    assert again.details == record.details
    assert canonical(again) == canonical(record)
    assert canonical(record) == canonical(record)
    assert json.loads(canonical(record))["details"] == json.loads(json.dumps(details))
    assert chain_hash(GENESIS_HASH, 1, again) == chain_hash(GENESIS_HASH, 1, record)


@pytest.mark.parametrize("outcome", list(Outcome))
def test_outcome_is_hashed(outcome: Outcome) -> None:
    record = dataclasses.replace(make_record(1), outcome=outcome)
    assert f'"outcome":"{outcome.value}"'.encode() in canonical(record)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    texts=st.lists(st.text(max_size=10), min_size=4, max_size=4),
    details=st.dictionaries(st.text(max_size=5), _json_values, max_size=5),
    outcome=st.sampled_from(list(Outcome)),
    moment=st.datetimes(timezones=st.just(UTC)),
)
def test_canonical_is_exactly_json_dumps_of_the_event(
    texts: list[str], details: dict[str, object], outcome: Outcome, moment: datetime
) -> None:
    """Built key by key (to reuse the details' JSON), it must stay byte for byte what
    `json.dumps` of the whole event gives: every chain ever written was hashed that way."""
    record = AuditRecord(texts[0], moment, texts[1], texts[2], texts[3], outcome, details)
    reference = json.dumps(
        {
            "event_id": record.event_id,
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor": record.actor,
            "action": record.action,
            "target": record.target,
            "outcome": str(outcome),
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    ).encode()
    whole, details_json = canonical_parts(record)
    assert whole == reference == canonical(record)
    assert json.loads(details_json) == json.loads(json.dumps(details))
    assert f'"details":{details_json},'.encode() in whole


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),  # past 64 bits too
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),  # non-ASCII, DEL and control characters included
        st.sampled_from([1e-05, 1e-7, 1.5e16, 0.0001, -0.0, 5e-324, "e-5", "0.00001"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(details=st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_the_fast_details_encoder_writes_exactly_the_json_module_s_text(
    details: dict[str, object],
) -> None:
    """The chain's canonical form is the json module's; orjson, used for speed, must agree."""
    expected = json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)
    assert encode_details(details) == expected


def test_values_that_are_not_plain_json_are_written_as_before() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    details: dict[str, object] = {"when": when, "kind": AuditAction.CREATE, "n": (1, 2)}
    expected = json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)
    assert encode_details(details) == expected


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(1, 1, 2),  # a day in: any offset must stay within datetime's range
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5)), timezone(-timedelta(hours=9, minutes=30))]
        ),
    )
)
def test_the_canonical_time_is_the_strftime_it_always_was(when: datetime) -> None:
    record = dataclasses.replace(make_record(1), time=when)
    expected = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert f'"time":"{expected}"'.encode() in canonical(record)
