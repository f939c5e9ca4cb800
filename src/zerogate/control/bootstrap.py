"""First start and every start of a control plane on a data directory.

First start: database, CA, a first admin user and a one-time admin token. Every start:
migrations, CA loaded, the listener's TLS certificate renewed when a third of its life is
left or its names changed. Nothing here serves traffic; `server` does.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

from cryptography import x509
from sqlalchemy import func, select

from zerogate.config import OidcProviderSettings, Settings
from zerogate.control.pki_service import PkiService
from zerogate.control.portal.oidc import OidcClient, OidcProviderConfig
from zerogate.control.portal.web import PortalConfig
from zerogate.core.api_tokens import Scope
from zerogate.core.audit import AuditAction
from zerogate.core.identity.claim_mapping import ClaimRule
from zerogate.core.inventory import GroupSpec, UserSpec
from zerogate.core.inventory.kinds import KINDS_BY_NAME
from zerogate.pki import load_or_create_kek
from zerogate.pki.sealing import Sealer
from zerogate.store import audit, credentials, tokens
from zerogate.store.db import Database, open_database
from zerogate.store.inventory import Inventory
from zerogate.store.models import ApiToken, utcnow
from zerogate.store.sessions import SessionPolicy

log = logging.getLogger("zerogate.bootstrap")


@dataclass(frozen=True, slots=True)
class ControlPlane:
    settings: Settings
    db: Database
    pki: PkiService
    tls_cert: Path
    tls_key: Path
    ca_cert: Path
    portal: PortalConfig
    admin_token: str | None  # set only on the start that created it
    admin_password: str | None  # likewise
    gateway: LocalGateway | None = None


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _listener_names(settings: Settings) -> tuple[list[str], list[str]]:
    dns, ips = [], ["127.0.0.1", "::1"]
    for host in (*settings.public_hostnames, settings.listen_host):
        try:
            ips.append(str(ipaddress.ip_address(host)))
        except ValueError:
            dns.append(host)
    return sorted(set(dns)), sorted(set(ips))


def _needs_new_cert(path: Path, dns: list[str], now: datetime) -> bool:
    if not path.exists():
        return True
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    if cert.not_valid_after_utc - now < life / 3:
        return True
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(names.get_values_for_type(x509.DNSName)) != dns


def _ensure_tls(settings: Settings, pki: PkiService) -> tuple[Path, Path]:
    tls_dir = settings.data_dir / "tls"
    cert_path, key_path = tls_dir / "control.pem", tls_dir / "control.key"
    dns, ips = _listener_names(settings)
    if _needs_new_cert(cert_path, dns, utcnow()):
        issued, key_pem = pki.issue_server("zerogate control plane", dns, ips)
        _write_private(key_path, key_pem)
        _write_private(cert_path, issued.pem.encode() + pki.ca.cert_pem)
        log.info(
            "issued control-plane TLS certificate %s for %s", issued.serial, ", ".join(dns + ips)
        )
    return cert_path, key_path


@dataclass(frozen=True, slots=True)
class LocalGateway:
    """What `zerogate up` hands the gateway it starts beside the control plane."""

    NAME: ClassVar[str] = "local"  # its `--name`; its token may speak for no other gateway
    cert: Path
    key: Path
    token_file: Path  # 0600: an API token with the gateway scope
    data_dir: Path


def _gateway_ips(settings: Settings) -> list[str]:
    """Loopback and every public address: connectors dial the gateway by address."""
    ips = ["127.0.0.1", "::1"]
    for host in (*settings.public_hostnames, settings.listen_host):
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(host)
            if not address.is_unspecified and str(address) not in ips:
                ips.append(str(address))
    return ips


def _ensure_gateway(settings: Settings, pki: PkiService, db: Database) -> LocalGateway:
    """A certificate for every app hostname under `app_domain`, and the gateway's token."""
    tls_dir = settings.data_dir / "tls"
    cert_path, key_path = tls_dir / "gateway.pem", tls_dir / "gateway.key"
    dns = sorted({settings.app_domain, f"*.{settings.app_domain}"})
    if _needs_new_cert(cert_path, dns, utcnow()):
        issued, key_pem = pki.issue_server("zerogate gateway", dns, _gateway_ips(settings))
        _write_private(key_path, key_pem)
        _write_private(cert_path, issued.pem.encode() + pki.ca.cert_pem)
        log.info("issued gateway TLS certificate %s for %s", issued.serial, ", ".join(dns))
    token_file = settings.data_dir / "gateway.token"
    with db.transaction() as session:
        held = token_file.read_text().strip() if token_file.exists() else ""
        if not held or tokens.authenticate(session, held, utcnow()) is None:
            _row, text = tokens.issue(
                session,
                name="local-gateway",
                scope=Scope.GATEWAY,
                actor="system",
                gateway=LocalGateway.NAME,
            )
            _write_private(token_file, text.encode())
    return LocalGateway(cert_path, key_path, token_file, settings.data_dir / "gateway")


def _first_admin(db: Database) -> tuple[str, str] | None:
    """Create the first admin (with a one-time password) and an admin API token, unless any
    token was ever created."""
    with db.transaction() as session:
        if session.scalar(select(func.count()).select_from(ApiToken)):
            return None
        inventory = Inventory(session, "system")
        inventory.create(
            KINDS_BY_NAME["group"], GroupSpec(name="admins", description="zerogate administrators")
        )
        inventory.create(
            KINDS_BY_NAME["user"],
            UserSpec(username="admin", display_name="First administrator", groups=["admins"]),
        )
        admin = credentials.find_user(session, "admin")
        assert admin is not None
        password = secrets.token_urlsafe(15)
        credentials.set_password(admin, password)
        _row, text = tokens.issue(session, name="bootstrap", scope=Scope.ADMIN, actor="system")
        audit.record(session, "system", AuditAction.BOOTSTRAP, "system", admin="admin")
        return text, password


def _provider_config(provider: OidcProviderSettings) -> OidcProviderConfig:
    rules = tuple(
        ClaimRule(
            claim=rule.claim,
            equals=rule.equals,
            suffix=rule.suffix,
            add_groups=rule.add_groups,
            department=rule.department,
            office=rule.office,
        )
        for rule in provider.rules
    )
    return OidcProviderConfig(
        name=provider.name,
        display_name=provider.display_name,
        issuer=provider.issuer,
        client_id=provider.client_id,
        client_secret=provider.client_secret.get_secret_value(),
        scopes=provider.scopes,
        rules=rules,
        clock_skew=timedelta(seconds=provider.clock_skew_seconds),
        copy_groups_claim=provider.copy_groups_claim,
    )


def start(settings: Settings) -> ControlPlane:
    """Open (or create) everything a control plane needs from its data directory."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = open_database(settings.effective_database_url)
    kek = load_or_create_kek(
        env_value=settings.ca_key.get_secret_value() if settings.ca_key else None,
        key_file=settings.effective_ca_key_file,
    )
    pki = PkiService.open(db, kek)
    ca_cert = settings.data_dir / "ca.pem"
    if not ca_cert.exists() or ca_cert.read_bytes() != pki.ca.cert_pem:
        ca_cert.write_bytes(pki.ca.cert_pem)
    tls_cert, tls_key = _ensure_tls(settings, pki)
    first = _first_admin(db)
    portal = PortalConfig(
        sealer=Sealer(kek, "totp"),
        signing_sealer=Sealer(kek, "token-signing"),
        session_policy=SessionPolicy(
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_max_hours),
        ),
        mfa_required_for_everyone=settings.mfa_required_for_everyone,
        sso={p.name: OidcClient(_provider_config(p)) for p in settings.oidc_providers},
    )
    token, password = (first[0], first[1]) if first is not None else (None, None)
    gateway = _ensure_gateway(settings, pki, db)
    return ControlPlane(
        settings, db, pki, tls_cert, tls_key, ca_cert, portal, token, password, gateway
    )
