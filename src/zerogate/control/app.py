"""The control plane's ASGI application: the composition of its routers.

Built by `create_app` from parts handed in (database, certificate authority), so tests and
`zerogate up` assemble the same thing with different storage.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from zerogate import __version__
from zerogate.control import errors, health, scim
from zerogate.control.api import (
    audit,
    connectors,
    devices,
    identity,
    inventory,
    pki,
    policy,
    tokens,
    transfer,
)
from zerogate.control.deps import ApiError, known_query_only
from zerogate.control.pki_service import PkiService
from zerogate.control.portal import account, device, login, passkeys, sso
from zerogate.control.portal import tokens as token_endpoints
from zerogate.control.portal.web import CsrfError, PortalConfig, render
from zerogate.control.snapshot_feed import SerialWatch
from zerogate.store.db import Database

API_PREFIX = "/api/v1"


def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(
        {"detail": exc.detail, "errors": []}, status_code=exc.status, headers=headers
    )


def create_app(db: Database, pki_service: PkiService, portal: PortalConfig) -> FastAPI:
    watch = SerialWatch(db)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        watch.close()  # the snapshot feed's task ends with the server, not after the database

    app = FastAPI(
        lifespan=lifespan,
        title="zerogate control plane",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.db = db
    app.state.pki = pki_service
    app.state.portal = portal
    app.state.serial_watch = watch
    metrics = health.Metrics()
    health.install_metrics(app, metrics)
    errors.install(app)
    app.add_exception_handler(ApiError, _api_error)
    scim.install_handlers(app)  # SCIM routes answer in RFC 7644's error shape, not the API's

    app.include_router(health.router(db, metrics))
    # Strict query strings for the API only: the portal's SSO callback receives whatever
    # parameters the identity provider adds.
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(known_query_only)])
    api.include_router(inventory.router())
    api.include_router(transfer.router())
    api.include_router(tokens.router())
    api.include_router(audit.router())
    api.include_router(pki.router())
    api.include_router(identity.router())
    api.include_router(policy.router())
    api.include_router(devices.router())
    api.include_router(connectors.router())
    app.include_router(api)
    app.include_router(login.router(db, portal, providers=[c.config for c in portal.sso.values()]))
    app.include_router(sso.router(db, portal, dict(portal.sso)))
    app.include_router(device.router(db, portal))
    app.include_router(account.router(db, portal))
    app.include_router(scim.router())
    app.include_router(passkeys.router(db, portal))
    app.include_router(token_endpoints.router(db, portal))
    app.add_exception_handler(CsrfError, _csrf_refused)
    return app


def _csrf_refused(request: Request, _exc: Exception) -> Response:
    text = "The form had expired or did not come from this site. Go back, reload and try again."
    return render(request, "message.html", 403, title="Please try again", text=text)
