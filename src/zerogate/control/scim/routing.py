"""How SCIM routes fail: every exception under `/scim/v2` leaves as an RFC 7644 §3.12 error.

The admin API has its own error shape, installed app-wide for `ApiError`, `NotFound`,
`Conflict`, `Invalid` and validation errors. SCIM routes use `ScimRoute`, which turns those
into a `ScimError` *by re-raising*: the exception still unwinds through the request's
dependencies, so the database transaction rolls back (a PATCH is all or nothing, §3.5.2),
and only then does the handler from `install_handlers` write the SCIM body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException

from zerogate.control.deps import ApiError, Caller, scim_client
from zerogate.control.scim.errors import ScimError, ScimType, bad, invalid_problems
from zerogate.control.scim.messages import ScimResponse
from zerogate.store.db import DatabaseError
from zerogate.store.errors import Conflict, Invalid, NotFound

log = logging.getLogger("zerogate.control.scim")

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ScimRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def scim_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ScimError:
                raise
            except Exception as exc:
                raise translate(exc) from exc

        return scim_handler


def translate(exc: Exception) -> ScimError:
    """What the rest of zerogate raises, as the SCIM error an identity provider understands."""
    if isinstance(exc, ApiError):
        # RFC 7644 §2: 401 for a missing or bad token, 403 for a token without the scim scope.
        headers = {"WWW-Authenticate": 'Bearer realm="zerogate SCIM"'} if exc.status == 401 else {}
        return ScimError(exc.status, exc.detail, headers=headers)
    if isinstance(exc, NotFound):
        return ScimError(404, str(exc))
    if isinstance(exc, Conflict):
        return ScimError(409, str(exc), ScimType.UNIQUENESS)
    if isinstance(exc, Invalid):
        return invalid_problems(exc.problems)
    if isinstance(exc, RequestValidationError):
        return bad(ScimType.INVALID_SYNTAX, _validation_detail(exc))
    if isinstance(exc, HTTPException):
        scim_type = ScimType.INVALID_SYNTAX if exc.status_code == 400 else None
        return ScimError(exc.status_code, str(exc.detail), scim_type)
    if isinstance(exc, IntegrityError):
        log.warning("SCIM integrity error: %s", type(exc).__name__)
        return ScimError(409, "the change conflicts with another object", ScimType.UNIQUENESS)
    if isinstance(exc, OperationalError | DatabaseError):
        log.error("SCIM database error: %s", type(exc).__name__)
        return ScimError(503, "database unavailable, try again shortly")
    log.error("SCIM request failed", exc_info=exc)
    return ScimError(500, "internal error")


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "unknown query parameter"
        elif where == "body" and error.get("type") in ("dict_type", "model_attributes_type"):
            message = "must be a JSON object"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "the request is malformed"


def _render(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScimError)
    return ScimResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ScimError, _render)


ScimCaller = Annotated[Caller, Depends(scim_client)]
JsonBody = Annotated[dict[str, object], Body()]  # application/scim+json or application/json
FilterText = Annotated[str | None, Query(alias="filter", max_length=2000)]
