"""The control plane's use of the certificate authority: load or create it, record what it
issues, revoke, and publish the revocation list.

The CA's key lives in the database only encrypted with the key-encryption key (from
`ZEROGATE_CA_KEY` or a 0600 key file), so every replica holding the KEK can sign and a
database dump alone signs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from zerogate.core.audit import AuditAction
from zerogate.pki import (
    CertificateAuthority,
    CertKind,
    IssuedCertificate,
    PkiError,
    generate_private_key,
    private_key_pem,
)
from zerogate.store import audit
from zerogate.store.db import Database
from zerogate.store.errors import NotFound
from zerogate.store.models import CertificateAuthorityRecord, IssuedCertificateRecord, utcnow

CA_NAME = "zerogate-root"


def _record(issued: IssuedCertificate) -> IssuedCertificateRecord:
    return IssuedCertificateRecord(
        serial=issued.serial,
        kind=str(issued.kind),
        common_name=issued.common_name,
        fingerprint_sha256=issued.fingerprint_sha256,
        not_before=issued.not_before,
        not_after=issued.not_after,
        pem=issued.pem,
    )


class PkiService:
    def __init__(self, db: Database, ca: CertificateAuthority) -> None:
        self.db = db
        self.ca = ca

    @classmethod
    def open(cls, db: Database, kek: bytes, *, now: datetime | None = None) -> PkiService:
        """Load the CA, creating it on first start (one transaction, so replicas agree)."""
        with db.transaction() as session:
            row = session.scalars(
                select(CertificateAuthorityRecord).where(CertificateAuthorityRecord.name == CA_NAME)
            ).first()
            if row is not None:
                ca = CertificateAuthority.load(
                    row.cert_pem.encode(), row.encrypted_key_pem.encode(), kek
                )
                return cls(db, ca)
            ca = CertificateAuthority.create(name="zerogate root CA", now=now or utcnow())
            cert_pem, key_pem = ca.export(kek)
            session.add(
                CertificateAuthorityRecord(
                    name=CA_NAME, cert_pem=cert_pem.decode(), encrypted_key_pem=key_pem.decode()
                )
            )
            audit.record(
                session,
                "system",
                AuditAction.CA_CREATE,
                f"ca/{CA_NAME}",
                fingerprint=ca.fingerprint_sha256,
            )
        return cls(db, ca)

    def issue_from_csr(
        self,
        session: Session,
        actor: str,
        csr_pem: bytes,
        *,
        kind: CertKind,
        common_name: str,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> IssuedCertificate:
        issued = self.ca.issue_from_csr(
            csr_pem,
            kind=kind,
            common_name=common_name,
            now=utcnow(),
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        self._store(session, actor, AuditAction.CERT_ISSUE, issued)
        return issued

    def issue_server(
        self, common_name: str, dns_names: Sequence[str], ips: Sequence[str]
    ) -> tuple[IssuedCertificate, bytes]:
        """A TLS server certificate and its new key, for the control plane's own listener."""
        key = generate_private_key()
        issued = self.ca.issue(
            kind=CertKind.SERVER,
            common_name=common_name,
            public_key=key.public_key(),
            now=utcnow(),
            dns_names=dns_names,
            ip_addresses=ips,
        )
        with self.db.transaction() as session:
            self._store(session, "system", AuditAction.CERT_ISSUE, issued)
        return issued, private_key_pem(key)

    def renew(self, session: Session, actor: str, serial: str) -> IssuedCertificate:
        row = self.get(session, serial)
        if row.revoked_at is not None:
            raise PkiError(f"certificate {serial} is revoked and cannot be renewed")
        issued = self.ca.renew(row.pem.encode(), now=utcnow())
        self._store(session, actor, AuditAction.CERT_RENEW, issued, renewed_from=serial)
        return issued

    def revoke(
        self, session: Session, actor: str, serial: str, reason: str
    ) -> IssuedCertificateRecord:
        row = self.get(session, serial)
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            row.revocation_reason = reason
            audit.record(
                session, actor, AuditAction.CERT_REVOKE, f"certificate/{serial}", reason=reason
            )
        return row

    def crl_pem(self, session: Session) -> bytes:
        now = utcnow()
        revoked = session.execute(
            select(IssuedCertificateRecord.serial, IssuedCertificateRecord.revoked_at).where(
                IssuedCertificateRecord.revoked_at.is_not(None),
                IssuedCertificateRecord.not_after > now,  # expired ones need no listing
            )
        ).all()
        return self.ca.crl(
            [(serial, when) for serial, when in revoked if when is not None], now=now
        )

    def get(self, session: Session, serial: str) -> IssuedCertificateRecord:
        row = session.get(IssuedCertificateRecord, serial)
        if row is None:
            raise NotFound("certificate", serial)
        return row

    def _store(
        self,
        session: Session,
        actor: str,
        action: AuditAction,
        issued: IssuedCertificate,
        **extra: object,
    ) -> None:
        session.add(_record(issued))
        session.flush()
        audit.record(
            session,
            actor,
            action,
            f"certificate/{issued.serial}",
            kind=str(issued.kind),
            common_name=issued.common_name,
            not_after=issued.not_after.isoformat(),
            **extra,
        )
