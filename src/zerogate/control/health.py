"""Liveness, readiness and Prometheus metrics: what load balancers and monitoring poll."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from zerogate.control.errors import ErrorBody, error
from zerogate.store import gateway_reports
from zerogate.store.db import Database, DatabaseError
from zerogate.store.models import utcnow


class GatewaySpools(Collector):
    """Each gateway worker's audit spool as it last reported it (`core.spool_report`), read
    from the database at every scrape, so every control plane replica shows all of them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        labels = ["gateway", "worker"]
        accepting = GaugeMetricFamily(
            "zerogate_gateway_audit_accepting",
            "1 while the gateway worker's audit spool takes events; 0 while it refuses requests",
            labels=labels,
        )
        backlog = GaugeMetricFamily(
            "zerogate_gateway_audit_backlog_bytes",
            "Audit events the control plane has not confirmed, on the gateway worker",
            labels=labels,
        )
        limit = GaugeMetricFamily(
            "zerogate_gateway_audit_backlog_limit_bytes",
            "The backlog at which the gateway worker refuses requests (absent: no limit)",
            labels=labels,
        )
        refused = GaugeMetricFamily(
            "zerogate_gateway_audit_refused_requests",
            "Requests the gateway worker refused since it last stopped accepting",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "zerogate_gateway_audit_report_age_seconds",
            "Seconds since the gateway worker's last report",
            labels=labels,
        )
        try:
            with self._db.transaction() as session:
                reports = gateway_reports.latest(session)
        except (DatabaseError, SQLAlchemyError):
            reports = []  # /readyz says why; the request metrics are still worth serving
        now = utcnow()
        for reported in reports:
            report = reported.report
            key = [report.gateway, str(report.worker)]
            accepting.add_metric(key, float(report.accepting))
            backlog.add_metric(key, report.backlog_bytes)
            if report.max_bytes is not None:
                limit.add_metric(key, report.max_bytes)
            refused.add_metric(key, report.refused)
            age.add_metric(key, (now - reported.at).total_seconds())
        yield from (accepting, backlog, limit, refused, age)


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
    metrics.registry.register(GatewaySpools(db))

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
