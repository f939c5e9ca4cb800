"""The signed policy snapshot: everything a gateway needs to decide, as one signed document.

Where it sits: the control plane builds a `Snapshot` from the policy in force and the
inventory, signs it with its token signing key (`sign_snapshot`), and serves it; a gateway
verifies it against the control plane's JWKS (`verify_snapshot`) and compiles its policy
(`compile.compile_policy`). Parsing YAML is slow and needs the inventory; the snapshot carries
the policy already parsed and validated, so a gateway only decodes and compiles it.

Format: a JWS compact serialization (RFC 7515 §7.1), ES256, header
`{"alg": "ES256", "kid": …, "typ": "zg-snapshot+json"}`, whose payload is the JSON form of
`Snapshot`. The `typ` keeps a snapshot from being taken for an access token and the other way
round, though both are signed by the same keys.

Invariants:
1. `verify_snapshot(sign_snapshot(k, s), jwks([k]), issuer=s.issuer) == s` for every snapshot.
2. Nothing but ES256 with a key named in the JWKS verifies; the header cannot choose the
   algorithm, and unknown header parameters are refused.
3. `serial` only grows (the control plane uses its audit sequence): a gateway keeps the
   snapshot with the highest serial and refuses older ones, so a replayed snapshot cannot roll
   a gateway back to a policy that has since been tightened.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from zerogate.core.policy.model import App, Policy
from zerogate.core.token_keys import ALGORITHM, SigningKey, signer, verification_keys

SNAPSHOT_TYPE: Final = "zg-snapshot+json"
MAX_SNAPSHOT_BYTES: Final = 64 * 1024 * 1024  # a 5,000-rule policy with 10,000 apps is ~3 MB
_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
_REGISTRY = JWSRegistry(algorithms=[ALGORITHM])
# joserfc refuses payloads over 128 kB by default; a snapshot is larger (base64: 4/3 of it).
_REGISTRY.max_payload_length = MAX_SNAPSHOT_BYTES * 4 // 3 + 4


@dataclass(frozen=True, slots=True)
class HttpRoute:
    """Where a clientless (browser) app lives: its public hostname and its upstream URL."""

    app: str
    hostname: str  # lower case
    target: str  # http(s)://host[:port][/base]
    via: str | None = None  # the connector group that carries its traffic; None: direct


@dataclass(frozen=True, slots=True)
class TcpRoute:
    """A TCP app reached by HTTP CONNECT to its hostname: the target its connector dials."""

    app: str
    hostname: str  # lower case
    target: str  # host:port, resolved where the traffic leaves (gateway or connector)
    via: str | None = None


@dataclass(frozen=True, slots=True)
class AdmittedConnector:
    """A connector a gateway may hold a tunnel with: by the serials of its live certificates."""

    name: str
    group: str
    serials: frozenset[str]


@dataclass(frozen=True, slots=True)
class Snapshot:
    issuer: str  # the control plane's URL, as in access tokens' `iss`
    serial: int  # grows with every change the control plane records
    policy_version: int  # 0: no policy pushed yet (deny everything)
    issued_at: AwareDatetime
    policy: Policy
    apps: tuple[App, ...]
    routes: tuple[HttpRoute, ...] = ()
    # Sessions ended while their app tokens may still be unexpired, and disabled principals:
    # a gateway refuses their tokens from the moment it takes this snapshot.
    revoked_sessions: frozenset[str] = frozenset()
    disabled_users: frozenset[str] = frozenset()
    # People deleted lately: their tokens issued up to the deletion are refused (a person
    # created again under the same name afterwards is someone else, with new tokens).
    users_removed_at: Mapping[str, AwareDatetime] = field(default_factory=dict)
    tcp_routes: tuple[TcpRoute, ...] = ()
    connectors: tuple[AdmittedConnector, ...] = ()  # enrolled, unrevoked, with a live certificate


_ADAPTER: Final = TypeAdapter(Snapshot)


class SnapshotRejection(enum.StrEnum):
    """Why a snapshot was refused; gateways log and count these values."""

    MALFORMED = "malformed"
    BAD_ALGORITHM = "bad_algorithm"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_ISSUER = "wrong_issuer"
    INVALID_CONTENT = "invalid_content"


class SnapshotError(Exception):
    def __init__(self, reason: SnapshotRejection, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def sign_snapshot(key: SigningKey, snapshot: Snapshot) -> str:
    if snapshot.serial < 0 or snapshot.policy_version < 0:
        raise ValueError("serial and policy_version must not be negative")
    header = {"alg": ALGORITHM, "kid": key.kid, "typ": SNAPSHOT_TYPE}
    payload = _ADAPTER.dump_json(snapshot)
    if len(payload) > MAX_SNAPSHOT_BYTES:
        raise ValueError(f"the snapshot would be {len(payload)} bytes, over {MAX_SNAPSHOT_BYTES}")
    return jws.serialize_compact(header, payload, signer(key), registry=_REGISTRY)


def verify_snapshot(text: str, key_set: Mapping[str, object], *, issuer: str) -> Snapshot:
    """The snapshot `text` holds, if a key of the JWKS `key_set` signed it for `issuer`.

    Raises SnapshotError (with the reason) for anything else; ValueError if `key_set` itself
    is not a valid JWKS (a configuration error, not a bad snapshot).
    """
    keys = verification_keys(key_set)
    if not text.isascii() or len(text) > 2 * MAX_SNAPSHOT_BYTES or text.count(".") != 2:
        raise SnapshotError(SnapshotRejection.MALFORMED, "not a compact JWS of acceptable size")
    try:
        header = jws.extract_compact(text.encode("ascii"), registry=_REGISTRY).headers()
    except (JoseError, ValueError):
        raise SnapshotError(
            SnapshotRejection.MALFORMED, "the header is not base64url JSON"
        ) from None
    if header.get("alg") != ALGORITHM:
        raise SnapshotError(SnapshotRejection.BAD_ALGORITHM, "only ES256 snapshots are accepted")
    if not header.keys() <= _HEADER_MEMBERS or header.get("typ") != SNAPSHOT_TYPE:
        raise SnapshotError(SnapshotRejection.MALFORMED, f"the header is not a {SNAPSHOT_TYPE}")
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise SnapshotError(SnapshotRejection.UNKNOWN_KEY, "the signing key is not in the JWKS")
    try:
        payload = jws.deserialize_compact(text, key, registry=_REGISTRY).payload
    except JoseError:
        raise SnapshotError(
            SnapshotRejection.BAD_SIGNATURE, "the signature does not verify"
        ) from None
    try:
        snapshot = _ADAPTER.validate_json(payload, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SnapshotError(SnapshotRejection.INVALID_CONTENT, f"{where}: {first['msg']}") from None
    if snapshot.issuer != issuer:
        raise SnapshotError(SnapshotRejection.WRONG_ISSUER, f"issued by {snapshot.issuer!r}")
    return snapshot
