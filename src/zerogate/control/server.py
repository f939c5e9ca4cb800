"""Serve the control plane over HTTPS with uvicorn until SIGINT or SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import ssl
from collections.abc import Iterator
from types import FrameType

import uvicorn

from zerogate.control.app import create_app
from zerogate.control.bootstrap import ControlPlane
from zerogate.control.snapshot_feed import SerialWatch
from zerogate.control.tls import ClientCertProtocol
from zerogate.heap import settle


class _Server(uvicorn.Server):
    """uvicorn, but a requested stop is a clean exit.

    uvicorn re-raises SIGINT/SIGTERM once it has drained, so the process would die by the
    signal (status -15) and a supervisor would log a crash. Here the handlers only start the
    graceful shutdown, and are restored afterwards.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # Gateways hold long polls open; answer them now, or the drain waits for each.
        app = self.config.app
        watch = getattr(getattr(app, "state", None), "serial_watch", None)
        if isinstance(watch, SerialWatch):
            watch.release_all()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {
            signum: signal.signal(signum, self.handle_exit)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def build_server(plane: ControlPlane) -> uvicorn.Server:
    settings = plane.settings
    config = uvicorn.Config(
        create_app(plane.db, plane.pki, plane.portal),
        host=settings.listen_host,
        port=settings.control_port,
        ssl_certfile=str(plane.tls_cert),
        ssl_keyfile=str(plane.tls_key),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        # Client certificates are optional (browsers have none) and, when presented, must be
        # from our CA: agents and services bind their tokens to them (RFC 8705).
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        ssl_ca_certs=str(plane.ca_cert),
        loop="uvloop",
        http=ClientCertProtocol,
        log_config=None,  # our JSON logging is already set up
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return _Server(config)


def serve(plane: ControlPlane) -> None:
    """Blocks until SIGINT or SIGTERM, then drains requests and returns (exit status 0)."""
    try:
        server = build_server(plane)
        settle()  # after the app is built: what exists now lives as long as the server
        server.run()
    finally:
        plane.db.close()
