"""Serve the control plane over HTTPS with uvicorn until SIGINT or SIGTERM."""

from __future__ import annotations

import signal
import ssl

import uvicorn

from zerogate.control.app import create_app
from zerogate.control.bootstrap import ControlPlane


def build_server(plane: ControlPlane) -> uvicorn.Server:
    settings = plane.settings
    config = uvicorn.Config(
        create_app(plane.db, plane.pki, plane.portal),
        host=settings.listen_host,
        port=settings.control_port,
        ssl_certfile=str(plane.tls_cert),
        ssl_keyfile=str(plane.tls_key),
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        loop="uvloop",
        http="httptools",
        log_config=None,  # our JSON logging is already set up
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


def serve(plane: ControlPlane) -> None:
    """Blocks until SIGINT or SIGTERM, then drains requests and returns (exit status 0).

    uvicorn handles the signals itself and afterwards re-raises them to whatever handler
    was there before; this no-op handler makes a requested stop a clean exit, not a kill.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: None)
    try:
        build_server(plane).run()
    finally:
        plane.db.close()
