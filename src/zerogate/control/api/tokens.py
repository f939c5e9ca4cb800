"""`/api/v1/tokens`: admin API tokens, listed without secrets, created once, revoked."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, model_validator

from zerogate.control.deps import AdminCaller, DbSession
from zerogate.control.errors import COMMON_RESPONSES, NOT_FOUND
from zerogate.core.api_tokens import Scope
from zerogate.core.inventory.names import Name
from zerogate.store import tokens
from zerogate.store.errors import NotFound
from zerogate.store.models import ApiToken


class TokenInfo(BaseModel):
    id: str
    name: str
    scope: Scope
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    gateway: str | None  # the one gateway a gateway-scoped token may speak for


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    scope: Scope = Scope.ADMIN
    expires_at: datetime | None = None
    # A gateway-scoped token bound to this gateway (`zerogate gateway --name`): the control
    # plane then takes events and reports only for it and its workers.
    gateway: Name | None = None

    @model_validator(mode="after")
    def _bound_only_for_gateways(self) -> NewToken:
        if self.gateway is not None and self.scope is not Scope.GATEWAY:
            raise ValueError("only a token with the gateway scope can be bound to a gateway")
        return self


class CreatedToken(TokenInfo):
    token: str


TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


def _info(row: ApiToken) -> dict[str, object]:
    return {field: getattr(row, field) for field in TokenInfo.model_fields}


def router() -> APIRouter:
    api = APIRouter(prefix="/tokens", tags=["tokens"], responses=COMMON_RESPONSES)

    @api.get("", response_model=list[TokenInfo], operation_id="list_tokens")
    def list_tokens(who: AdminCaller, session: DbSession) -> list[dict[str, object]]:
        return [_info(row) for row in tokens.all_tokens(session)]

    @api.post("", status_code=201, response_model=CreatedToken, operation_id="create_token")
    def create_token(body: NewToken, who: AdminCaller, session: DbSession) -> dict[str, object]:
        row, text = tokens.issue(
            session,
            name=body.name,
            scope=body.scope,
            actor=who.actor,
            expires_at=body.expires_at,
            gateway=body.gateway,
        )
        return {**_info(row), "token": text}

    @api.post(
        "/{token_id}/revoke",
        response_model=TokenInfo,
        operation_id="revoke_token",
        responses=NOT_FOUND,
    )
    def revoke_token(token_id: TokenId, who: AdminCaller, session: DbSession) -> dict[str, object]:
        row = tokens.revoke(session, token_id, who.actor)
        if row is None:
            raise NotFound("token", token_id)
        return _info(row)

    return api
