"""SQLAlchemy models: how the inventory, identities, credentials and audit log are stored.

Names are the keys people and the API use; integer ids are internal. Foreign keys that
describe ownership cascade (a group's memberships), references that describe use restrict
(a department still holding users cannot vanish silently).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps go in and come out as aware UTC on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


group_members = Table(
    "group_members",
    Base.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Department(Timestamped, Base):
    __tablename__ = "departments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")


class Office(Timestamped, Base):
    __tablename__ = "offices"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    location: Mapped[str] = mapped_column(String(500), default="")
    description: Mapped[str] = mapped_column(String(500), default="")


class Group(Timestamped, Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    mfa_required: Mapped[bool] = mapped_column(Boolean, default=False)
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)  # SCIM externalId
    members: Mapped[list[User]] = relationship(
        secondary=group_members, back_populates="groups", passive_deletes=True
    )


class User(Timestamped, Base):
    """A principal: a person, or a workload (`kind = service`) with no device."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(500), default="")
    kind: Mapped[str] = mapped_column(String(16), default="person")
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="RESTRICT"), index=True
    )
    office_id: Mapped[int | None] = mapped_column(
        ForeignKey("offices.id", ondelete="RESTRICT"), index=True
    )
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    mfa_required: Mapped[bool] = mapped_column(Boolean, default=False)
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)  # SCIM externalId
    # Credentials: never part of the inventory document, never exported.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    totp_secret_sealed: Mapped[str | None] = mapped_column(Text)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    totp_last_counter: Mapped[int | None] = mapped_column(BigInteger)
    department: Mapped[Department | None] = relationship(lazy="joined")
    office: Mapped[Office | None] = relationship(lazy="joined")
    groups: Mapped[list[Group]] = relationship(
        secondary=group_members, back_populates="members", order_by="Group.name"
    )


class ConnectorGroup(Timestamped, Base):
    __tablename__ = "connector_groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    region: Mapped[str] = mapped_column(String(500), default="")
    description: Mapped[str] = mapped_column(String(500), default="")


class Connector(Timestamped, Base):
    __tablename__ = "connectors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    connector_group_id: Mapped[int] = mapped_column(
        ForeignKey("connector_groups.id", ondelete="RESTRICT"), index=True
    )
    description: Mapped[str] = mapped_column(String(500), default="")
    cert_serial: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Enrollment: the SHA-256 of a one-time token (never the token), until it is used.
    enrollment_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    enrollment_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    enrolled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    health: Mapped[dict[str, object] | None] = mapped_column(JSON)  # the latest report
    connector_group: Mapped[ConnectorGroup] = relationship(lazy="joined")


class Gateway(Timestamped, Base):
    __tablename__ = "gateways"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    region: Mapped[str] = mapped_column(String(500), default="")
    public_address: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    cert_serial: Mapped[str | None] = mapped_column(String(64))
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class GatewayReport(Base):
    """The latest audit spool state of one gateway worker (`core.spool_report`)."""

    __tablename__ = "gateway_reports"
    __table_args__ = (UniqueConstraint("gateway", "worker"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    gateway: Mapped[str] = mapped_column(String(64))  # the name it runs under
    worker: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))  # the token it reported with
    report: Mapped[dict[str, object]] = mapped_column(JSON)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Application(Timestamped, Base):
    __tablename__ = "applications"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    hostname: Mapped[str | None] = mapped_column(String(253), unique=True)
    target: Mapped[str] = mapped_column(String(2000))
    connector_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("connector_groups.id", ondelete="RESTRICT"), index=True
    )
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    owner: Mapped[str] = mapped_column(String(500), default="")
    mode: Mapped[str] = mapped_column(String(16), default="enforce")
    description: Mapped[str] = mapped_column(String(500), default="")
    connector_group: Mapped[ConnectorGroup | None] = relationship(lazy="joined")


class Device(Timestamped, Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    os_family: Mapped[str] = mapped_column(String(16), default="")
    serial: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    description: Mapped[str] = mapped_column(String(500), default="")
    cert_serial: Mapped[str | None] = mapped_column(String(64))
    user: Mapped[User | None] = relationship(lazy="joined")


class DevicePosture(Base):
    """The latest posture report of a device, sent by its agent over mutual TLS."""

    __tablename__ = "device_postures"
    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    os_family: Mapped[str] = mapped_column(String(16))
    os_version: Mapped[str] = mapped_column(String(64))
    disk_encrypted: Mapped[bool] = mapped_column(Boolean)
    firewall: Mapped[bool] = mapped_column(Boolean)
    screen_lock: Mapped[bool] = mapped_column(Boolean)
    processes: Mapped[list[str]] = mapped_column(JSON, default=list)
    agent_version: Mapped[str | None] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)
    certificate_serial: Mapped[str] = mapped_column(String(64))  # the certificate that sent it


class Session(Base):
    """A login: revocable server-side record behind every cookie and access token.

    `id` is the SHA-256 of the cookie's secret, so a database dump holds no usable session;
    `handle` is the public name people and the API use to revoke one.
    """

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    handle: Mapped[str] = mapped_column(String(32), unique=True)
    auth_time: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    mfa_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    provider: Mapped[str] = mapped_column(String(64), default="local")
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(500), default="")


class PolicyVersion(Base):
    __tablename__ = "policy_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    author: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(Text)


class ApiToken(Base):
    """An admin API token; only a hash of its secret is kept."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Gateway-scoped tokens: the gateway whose events and reports the token may send (None:
    # any, as tokens made before this existed could).
    gateway: Mapped[str | None] = mapped_column(String(64))


class CertificateAuthorityRecord(Base):
    """The CA: certificate in clear, private key only encrypted with the key-encryption key.

    Kept in the database so every control-plane replica that holds the KEK can sign.
    """

    __tablename__ = "certificate_authorities"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    cert_pem: Mapped[str] = mapped_column(Text)
    encrypted_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class IssuedCertificateRecord(Base):
    __tablename__ = "certificates"
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    common_name: Mapped[str] = mapped_column(String(200), index=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime)
    pem: Mapped[str] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    revocation_reason: Mapped[str] = mapped_column(String(200), default="")


class AuditEvent(Base):
    """One link of the hash chain (see zerogate.core.audit)."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(300), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's tip, one row, locked while appending so replicas never fork the chain."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    # The seq of the newest event that is not an access decision: what the snapshot serial is.
    state_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class RecoveryCode(Base):
    """One-time codes for a lost second factor; only their SHA-256 is kept."""

    __tablename__ = "recovery_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LoginThrottle(Base):
    """Failure counters per account name and per source address (see core.identity.throttle)."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LoginFlow(Base):
    """A login under way (second factor due, enrollment, SSO round trip), keyed like sessions."""

    __tablename__ = "login_flows"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    data: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SigningKeyRecord(Base):
    """Token signing keys; the private key only sealed with the key-encryption key."""

    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebAuthnCredential(Base):
    __tablename__ = "webauthn_credentials"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1024), unique=True)
    public_key: Mapped[str] = mapped_column(Text)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DeviceAuthorization(Base):
    """An RFC 8628 device login: the CLI or agent polls with the device code while its
    person approves the short user code in a browser."""

    __tablename__ = "device_authorizations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the device code
    user_code: Mapped[str] = mapped_column(String(16), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    interval: Mapped[int] = mapped_column(Integer, default=5)
    last_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    approved_amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    denied: Mapped[bool] = mapped_column(Boolean, default=False)
    redeemed: Mapped[bool] = mapped_column(Boolean, default=False)
