"""A gateway process: fetch and verify the policy snapshot, listen, keep the snapshot fresh.

Where it sits: `zerogate gateway` (and `zerogate up`, which starts one beside the control
plane) calls `serve(settings)`. The snapshot is asked for with the serial already held
(`?since=`) in a long poll: the control plane answers as soon as the state changes (within
about 0.1 s) or after 25 s with 204. A new snapshot is verified against the JWKS, swapped in
whole, and written to disk. After a restart while the control plane is down, the last good
snapshot on disk is served (fail-static) until it is `max_stale_seconds` old; then every
request gets 503 (fail-closed), because a policy nobody can update is no longer the admins'.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import Path

import httpx
import uvloop
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from zerogate.core.policy.snapshot import Snapshot, SnapshotError, verify_snapshot
from zerogate.gateway.certs import CertificateStore
from zerogate.gateway.enforce import Enforcer, State, build_state
from zerogate.gateway.http import (
    IDENTITY_HEADERS,
    Forward,
    Gateway,
    Options,
    Reply,
    Request,
    status_page,
)
from zerogate.gateway.server import listen
from zerogate.gateway.spool import AsyncShipper, Spool
from zerogate.gateway.tunnels import TunnelRegistry

log = logging.getLogger("zerogate.gateway")
LONG_POLL_SECONDS = 25
CERT_RELOAD_SECONDS = 5.0
FIRST_SNAPSHOT_SECONDS = 10.0
RECHECK_SECONDS = 30.0  # long-lived connections are decided again at least this often
_UNAVAILABLE = status_page(503, "The gateway has no current policy; try again shortly.")
_UNRECORDED = replace(
    status_page(
        503, "The gateway cannot record audit events just now, so it lets nothing through; "
        "try again shortly.",
    ),
    headers=((b"retry-after", b"5"),),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    control_url: str  # as browsers reach it: also the issuer of tokens and snapshots
    token: str  # an API token with the gateway scope
    ca_file: Path  # the CA the control plane's certificate comes from
    cert_file: Path  # this listener's certificate chain (PEM)
    key_file: Path
    data_dir: Path  # last good snapshot, audit spool
    listen_host: str = "127.0.0.1"
    port: int = 8444
    name: str = "gateway"  # `--name`, as the control plane shows it; see `worker_name`
    poll_seconds: float = 1.0
    max_stale_seconds: float = 24 * 3600.0
    parent_pid: int | None = None  # exit when this process is gone (`zerogate up`'s child)
    certs_dir: Path | None = None  # admin-supplied NAME.pem + NAME.key pairs, chosen by SNI
    http_port: int | None = None  # plain HTTP here answers with a redirect to HTTPS
    tunnel_port: int | None = None  # connectors dial in here (mutual TLS); None: no tunnels
    worker: int = 0  # this process's index among the workers sharing the ports
    workers: int = 1
    # Events not yet confirmed by the control plane at which requests are refused (fail
    # closed rather than serve unrecorded); None: only a full disk stops it. The default is
    # `zerogate gateway --audit-spool-max-mb`'s.
    spool_max_bytes: int | None = None
    strip_headers: tuple[str, ...] = ()  # beside IDENTITY_HEADERS; lower case

    @property
    def options(self) -> Options:
        """The data plane's options: the identity headers dropped, the admin's ones too."""
        extra = {name.lower().replace("_", "-").encode() for name in self.strip_headers}
        return Options(strip_headers=IDENTITY_HEADERS | extra)

    @property
    def worker_name(self) -> str:
        """The name in this process's audit events and tunnels: the gateway's, and with
        several workers, the worker's index after it."""
        return f"{self.name}-{self.worker}" if self.workers > 1 else self.name


class SnapshotClient:
    """Fetches, verifies, stores and swaps in snapshots; never lets an older one replace a newer."""

    def __init__(self, settings: GatewaySettings, enforcer: Enforcer | None = None) -> None:
        self.settings = settings
        self.enforcer = enforcer
        self.serial = -1
        self.refreshed = 0.0  # time.time() of the last snapshot taken (or read from disk)
        context = ssl.create_default_context(cafile=str(settings.ca_file))
        self.http = httpx.AsyncClient(
            base_url=settings.control_url,
            verify=context,
            headers={"authorization": f"Bearer {settings.token}"},
            timeout=httpx.Timeout(10.0, read=LONG_POLL_SECONDS + 15.0),
        )
        self.store = settings.data_dir / "snapshot.json"

    async def fetch(self, wait: int = 0) -> State | None:
        """A new state if the control plane has a newer snapshot, else None (raises on errors).

        `wait`: let the control plane hold the request up to that long for a change.
        """
        params = {"since": str(self.serial), "wait": str(wait)} if self.serial >= 0 else {}
        response = await self.http.get("/api/v1/policy/snapshot", params=params)
        if response.status_code == 204:
            self.refreshed = time.time()
            return None
        response.raise_for_status()
        key_set = (await self.http.get("/.well-known/jwks.json")).raise_for_status().json()
        state = self._take(response.text, key_set)
        if state is not None:
            self._save(response.text, key_set)
        return state

    def load_saved(self) -> State | None:
        """The last good snapshot from disk, if there is one and it still verifies."""
        try:
            saved = json.loads(self.store.read_text())
            return self._take(str(saved["snapshot"]), dict(saved["jwks"]))
        except (OSError, ValueError, KeyError, TypeError, SnapshotError) as exc:
            log.warning("no usable saved snapshot: %s", exc)
            return None

    def _take(self, text: str, key_set: dict[str, object]) -> State | None:
        snapshot = verify_snapshot(text, key_set, issuer=self.settings.control_url)
        if snapshot.serial <= self.serial:
            return None  # a replay or a stale answer: keep what we have
        state = build_state(snapshot, key_set)
        self.serial = snapshot.serial
        self.refreshed = _issued(snapshot)
        return state

    def _save(self, text: str, key_set: dict[str, object]) -> None:
        tmp = self.store.with_suffix(".tmp")
        tmp.write_text(json.dumps({"snapshot": text, "jwks": key_set}))
        tmp.replace(self.store)

    async def close(self) -> None:
        await self.http.aclose()


def _issued(snapshot: Snapshot) -> float:
    return snapshot.issued_at.astimezone(UTC).timestamp()


class Guard:
    """The handler the listener calls: the enforcer, or 503 while there is no fresh policy
    or while the audit spool cannot take events (nothing is let through that could not be
    recorded; no decision is made, so these answers have no audit event of their own, and
    the spool logs how many there were)."""

    def __init__(self, spool: Spool | None = None) -> None:
        self.enforcer: Enforcer | None = None
        self.spool = spool

    def __call__(self, request: Request) -> Forward | Reply:
        enforcer = self.enforcer
        if enforcer is None:
            return _UNAVAILABLE
        spool = self.spool
        if spool is not None and not spool.accepting:
            spool.refused += 1
            return _UNRECORDED
        return enforcer.handle(request)


def redirect_to_https(port: int) -> Callable[[Request], Reply]:
    """The plain-HTTP listener's only answer: the same URL over HTTPS (308 keeps the method)."""
    suffix = "" if port == 443 else f":{port}"

    def redirect(request: Request) -> Reply:
        head = request.head
        if not head.host:
            return status_page(400, "Use HTTPS.")
        query = f"?{head.query}" if head.query else ""
        location = f"https://{head.host}{suffix}{request.path}{query}"
        return Reply(308, b"", ((b"location", location.encode()),), content_type=b"text/plain")

    return redirect


async def recheck_long_lived(
    gateway: Gateway, guard: Guard, stop: asyncio.Event, seconds: float = RECHECK_SECONDS
) -> None:
    """Long-lived connections (WebSockets, TCP tunnels) answer to the clock, not only to new
    snapshots: a time window that closes cuts them, and so does a snapshot grown too old
    (failing closed leaves no policy to hold any of them)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        if stop.is_set():
            return
        cut = gateway.recheck_tunnels(everything=guard.enforcer is None)
        if cut:
            log.info("cut %d long-lived connections no longer allowed", cut)


async def _reload_certificates(store: CertificateStore, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CERT_RELOAD_SECONDS)
        store.reload()


async def run(settings: GatewaySettings) -> None:
    loop = asyncio.get_running_loop()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    client = SnapshotClient(settings)
    spool = Spool(settings.data_dir / "spool", max_bytes=settings.spool_max_bytes)
    guard = Guard(spool)
    trust = ssl.create_default_context(cafile=str(settings.ca_file))
    shipper = AsyncShipper(
        spool,
        settings.control_url,
        settings.token,
        trust,
        gateway=settings.name,
        worker=settings.worker,
    )
    shipper.start(loop)
    audit = spool.hold_line  # written by the gateway's before_send, before the answer leaves

    gateway: Gateway | None = None
    tunnels = _tunnel_registry(settings, loop)

    def take(state: State) -> None:
        if tunnels is not None:
            cut_tunnels = tunnels.swap(state.snapshot)
            if cut_tunnels:
                log.info("cut %d connector tunnels no longer admitted", cut_tunnels)
        if gateway is not None and guard.enforcer is not None:
            guard.enforcer.swap(state)
            cut = gateway.recheck_tunnels()  # long-lived connections answer to the new policy
            if cut:
                log.info("cut %d long-lived connections no longer allowed", cut)
        elif guard.enforcer is None:
            guard.enforcer = Enforcer(
                state, portal=settings.control_url, gateway=settings.worker_name, audit=audit
            )
        else:
            guard.enforcer.swap(state)
        log.info("policy snapshot %d (policy version %d) in force",
                 state.snapshot.serial, state.snapshot.policy_version)  # fmt: skip

    saved = client.load_saved()
    if saved is not None and time.time() - client.refreshed < settings.max_stale_seconds:
        take(saved)
    else:  # nothing to serve yet: listen once there is a policy, or after a while (then 503)
        with contextlib.suppress(httpx.HTTPError, SnapshotError, ValueError, TimeoutError):
            first = await asyncio.wait_for(client.fetch(), FIRST_SNAPSHOT_SECONDS)
            if first is not None:
                take(first)
    certificates = CertificateStore(settings.cert_file, settings.key_file, settings.certs_dir)
    gateway = Gateway(
        guard,
        settings.options,
        loop,
        before_send=spool.write_through,
        tunnels=tunnels,
        server_name=certificates.server_name,
    )
    server = await listen(gateway, settings.listen_host, settings.port, tls=certificates.listener)
    tunnel_server: asyncio.Server | None = None
    if tunnels is not None and settings.tunnel_port:
        tunnel_server = await loop.create_server(
            tunnels.protocol,
            settings.listen_host,
            settings.tunnel_port,
            ssl=_tunnel_tls(settings),
            reuse_port=True,
            ssl_handshake_timeout=10.0,
        )
        log.info("connector tunnels on %s:%d", settings.listen_host, settings.tunnel_port)
    plain: Gateway | None = None
    plain_server: asyncio.Server | None = None
    if settings.http_port:
        plain = Gateway(redirect_to_https(settings.port), Options(scheme=b"http"), loop)
        plain_server = await listen(plain, settings.listen_host, settings.http_port)
    stop = asyncio.Event()
    reloading = loop.create_task(_reload_certificates(certificates, stop))
    rechecking = loop.create_task(recheck_long_lived(gateway, guard, stop))
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "gateway %s listening on %s:%d", settings.worker_name, settings.listen_host, settings.port
    )
    try:
        while not stop.is_set():
            fetching = asyncio.ensure_future(client.fetch(wait=LONG_POLL_SECONDS))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({fetching, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not fetching.done():
                fetching.cancel()
                break
            pause = 0.0  # a long poll that answered: ask again at once
            try:
                state = fetching.result()
                if state is not None:
                    take(state)
            except (httpx.HTTPError, SnapshotError, ValueError) as exc:
                log.warning("snapshot refresh failed: %s", exc)
                pause = settings.poll_seconds
            if settings.parent_pid is not None and os.getppid() != settings.parent_pid:
                log.warning("the process that started this gateway is gone: stopping")
                break
            stale = time.time() - client.refreshed > settings.max_stale_seconds
            if guard.enforcer is not None and stale:
                log.error("the policy snapshot is too old: refusing every request until refreshed")
                guard.enforcer = None
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
    finally:
        stop.set()
        reloading.cancel()
        rechecking.cancel()
        server.close()
        gateway.close()
        if tunnel_server is not None and tunnels is not None:
            tunnel_server.close()
            tunnels.close()
        if plain_server is not None and plain is not None:
            plain_server.close()
            plain.close()
        await client.close()
        await shipper.stop()
        spool.close()


def _tunnel_registry(
    settings: GatewaySettings, loop: asyncio.AbstractEventLoop
) -> TunnelRegistry | None:
    """Connectors' tunnels, signed for with this gateway's TLS key (what connectors verify)."""
    if not settings.tunnel_port:
        return None
    key = serialization.load_pem_private_key(settings.key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{settings.key_file}: connector tunnels need an ECDSA key")
    return TunnelRegistry(
        loop,
        gateway=settings.worker_name,
        signing_key=key,
        worker=settings.worker,
        workers=settings.workers,
    )


def _tunnel_tls(settings: GatewaySettings) -> ssl.SSLContext:
    """TLS 1.3 only, and a client certificate from our CA required (which one: `admit`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(settings.cert_file, settings.key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(settings.ca_file))
    return context


def serve(settings: GatewaySettings) -> None:
    uvloop.run(run(settings))
