"""`/api/v1/pki`: the CA certificate and revocation list (public), issuing, renewing and
revoking certificates (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from zerogate.control.deps import AdminCaller, AnyCaller, DbSession
from zerogate.control.errors import COMMON_RESPONSES, NOT_FOUND, ErrorBody
from zerogate.control.pki_service import PkiService
from zerogate.core.inventory.document import Problem
from zerogate.core.inventory.names import Text
from zerogate.pki import CertKind, IssuedCertificate, PkiError
from zerogate.store.errors import Conflict, Invalid

Serial = Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$")]
PEM = "application/x-pem-file"


class IssueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csr_pem: Annotated[str, Field(max_length=20_000)]
    kind: CertKind
    common_name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
    dns_names: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=50)] = []
    ip_addresses: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=50)] = []


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Text = "unspecified"


class CertificateOut(BaseModel):
    serial: str
    kind: str
    common_name: str
    fingerprint_sha256: str
    not_before: datetime
    not_after: datetime
    pem: str
    revoked_at: datetime | None = None


def _out(issued: IssuedCertificate) -> dict[str, object]:
    return {
        **{f: getattr(issued, f) for f in CertificateOut.model_fields if f != "revoked_at"},
        "kind": str(issued.kind),
    }


def _service(request: Request) -> PkiService:
    service: PkiService = request.app.state.pki
    return service


def _invalid(exc: PkiError, field: str) -> Invalid:
    return Invalid([Problem((field,), str(exc))])


def router() -> APIRouter:
    api = APIRouter(prefix="/pki", tags=["pki"], responses=COMMON_RESPONSES)

    @api.get(
        "/ca.pem",
        response_class=Response,
        operation_id="get_ca_certificate",
        responses={200: {"content": {PEM: {}}}},
    )
    def ca_pem(request: Request) -> Response:
        return Response(_service(request).ca.cert_pem, media_type=PEM)

    @api.get(
        "/crl.pem",
        response_class=Response,
        operation_id="get_revocation_list",
        responses={200: {"content": {PEM: {}}}},
    )
    def crl_pem(request: Request, session: DbSession) -> Response:
        return Response(_service(request).crl_pem(session), media_type=PEM)

    @api.post(
        "/certificates",
        status_code=201,
        response_model=CertificateOut,
        operation_id="issue_certificate",
    )
    def issue(
        body: IssueRequest, request: Request, who: AdminCaller, session: DbSession
    ) -> dict[str, object]:
        try:
            issued = _service(request).issue_from_csr(
                session,
                who.actor,
                body.csr_pem.encode(),
                kind=body.kind,
                common_name=body.common_name,
                dns_names=body.dns_names,
                ip_addresses=body.ip_addresses,
            )
        except PkiError as exc:
            raise _invalid(exc, "csr_pem") from None
        return _out(issued)

    @api.get(
        "/certificates/{serial}",
        response_model=CertificateOut,
        operation_id="get_certificate",
        responses=NOT_FOUND,
    )
    def show(
        serial: Serial, request: Request, who: AnyCaller, session: DbSession
    ) -> dict[str, object]:
        row = _service(request).get(session, serial)
        return {f: getattr(row, f) for f in CertificateOut.model_fields}

    @api.post(
        "/certificates/{serial}/renew",
        status_code=201,
        response_model=CertificateOut,
        operation_id="renew_certificate",
        responses={**NOT_FOUND, 409: {"model": ErrorBody}},
    )
    def renew(
        serial: Serial, request: Request, who: AdminCaller, session: DbSession
    ) -> dict[str, object]:
        try:
            return _out(_service(request).renew(session, who.actor, serial))
        except PkiError as exc:
            raise Conflict(str(exc)) from None

    @api.post(
        "/certificates/{serial}/revoke",
        response_model=CertificateOut,
        operation_id="revoke_certificate",
        responses=NOT_FOUND,
    )
    def revoke(
        serial: Serial, body: RevokeRequest, request: Request, who: AdminCaller, session: DbSession
    ) -> dict[str, object]:
        row = _service(request).revoke(session, who.actor, serial, body.reason)
        return {f: getattr(row, f) for f in CertificateOut.model_fields}

    return api
