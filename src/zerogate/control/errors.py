"""How failures become HTTP answers: one error body shape for every 4xx and 5xx.

Nothing here ever echoes internals (SQL, stack traces, secrets): a precise, safe message
for the client, the full story in the server log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from zerogate.core.inventory.document import Problem
from zerogate.store.db import DatabaseError
from zerogate.store.errors import Conflict, Invalid, NotFound

log = logging.getLogger("zerogate.control")


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    detail: str
    errors: list[ErrorItem] = []


def _body(detail: str, problems: Sequence[Problem] = ()) -> dict[str, object]:
    return {
        "detail": detail,
        "errors": [{"loc": list(p.path), "msg": p.message} for p in problems],
    }


def error(status: int, detail: str, problems: Sequence[Problem] = ()) -> JSONResponse:
    return JSONResponse(_body(detail, problems), status_code=status)


def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors():
        loc = [part for part in item.get("loc", ()) if isinstance(part, str | int)]
        msg = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if item.get("type") == "extra_forbidden":
            msg = "unknown field"
        problems.append(Problem(tuple(loc), msg))
    return error(422, "invalid request", problems)


def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Invalid)
    return error(
        422, "invalid request", [Problem(("body", *p.path), p.message) for p in exc.problems]
    )


def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database error: %s", type(exc).__name__)
    return error(503, "database unavailable, try again shortly")


def _integrity(_request: Request, exc: Exception) -> JSONResponse:
    # A race between two writers that the checks before the write could not see.
    log.warning("integrity error: %s", type(exc).__name__)
    return error(409, "the change conflicts with another object (duplicate or still in use)")


def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = error(exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Invalid, _invalid)
    app.add_exception_handler(NotFound, lambda _r, e: error(404, str(e)))
    app.add_exception_handler(Conflict, lambda _r, e: error(409, str(e)))
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(DatabaseError, _database_down)


# Every route documents these, so clients (and schemathesis) know every answer's shape.
COMMON_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "the body cannot be parsed"},
    401: {"model": ErrorBody, "description": "missing, malformed, expired or revoked token"},
    403: {"model": ErrorBody, "description": "the token's scope does not allow this"},
    422: {"model": ErrorBody, "description": "the request is malformed"},
    503: {"model": ErrorBody, "description": "the database is unavailable"},
}
NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "no such object"}
}
CONFLICT: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorBody, "description": "duplicate, or still in use"}
}
