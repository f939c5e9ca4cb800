"""Liveness, readiness and Prometheus metrics: what load balancers and monitoring poll."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from zerogate.control.errors import ErrorBody, error
from zerogate.store.db import Database, DatabaseError


class Metrics:
    """The control plane's metrics, in a registry of their own (one per app instance)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "zerogate_control_requests",
            "API requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "zerogate_control_request_seconds",
            "API request latency",
            ["method", "route"],
            registry=self.registry,
        )


def install_metrics(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        # The route template, not the raw path: raw paths would make unbounded label values.
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.latency.labels(request.method, path).observe(time.perf_counter() - started)
        return response


def router(db: Database, metrics: Metrics) -> APIRouter:
    api = APIRouter(tags=["health"])

    @api.get("/healthz", summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get(
        "/readyz",
        summary="The process can serve: the database answers",
        responses={503: {"model": ErrorBody}},
    )
    def readyz() -> Response:
        try:
            db.ping()
        except DatabaseError as exc:
            return error(503, str(exc))
        return Response('{"status":"ready"}', media_type="application/json")

    @api.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return api
