"""The gateway's certificates: one listener, many hostnames, chosen by SNI, reloaded live.

Where it sits: `run.py` builds one `CertificateStore` and listens with `store.listener`, a
TLS context whose SNI callback hands each handshake the context of the certificate that
names the requested host. Certificates come from the built-in CA (`--cert/--key`, the
default for any name) and from a directory of admin-supplied PEM pairs (`NAME.pem` with its
chain, `NAME.key`), wildcards included. `reload()` re-reads whatever changed on disk and
swaps the mapping in one assignment, so a renewed certificate is served from the next
handshake on, with no restart and no dropped connection.

The store also remembers the name each connection asked for (`server_name`): a request on
that connection must then be for that host (see `ClientConnection.on_headers_complete`).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

log = logging.getLogger("zerogate.gateway")


@dataclass(frozen=True, slots=True)
class _Loaded:
    context: ssl.SSLContext
    names: tuple[str, ...]  # lower-case DNS names, "*.example.com" for wildcards
    stamp: tuple[float, float]  # the mtimes of the certificate and key files


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _names(cert: Path) -> tuple[str, ...]:
    leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.lower().rstrip(".") for name in san.get_values_for_type(x509.DNSName))


def _stamp(cert: Path, key: Path) -> tuple[float, float]:
    return cert.stat().st_mtime, key.stat().st_mtime


class CertificateStore:
    def __init__(self, cert: Path, key: Path, directory: Path | None = None) -> None:
        self.cert, self.key, self.directory = cert, key, directory
        self._default = _Loaded(server_context(cert, key), _names(cert), _stamp(cert, key))
        self._files: dict[Path, _Loaded] = {}
        self._by_name: Mapping[str, ssl.SSLContext] = {}
        self.listener = server_context(cert, key)
        self.listener.sni_callback = self._choose
        # Held weakly: the entry goes with its connection's TLS object.
        self._asked: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
        self.reload()

    def reload(self) -> None:
        """Pick up new, changed and removed certificate files; keep the old on a bad file."""
        try:
            stamp = _stamp(self.cert, self.key)
            if stamp != self._default.stamp:
                self._default = _Loaded(server_context(self.cert, self.key), (), stamp)
                log.info("reloaded the gateway certificate %s", self.cert)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("cannot reload %s, keeping the one in use: %s", self.cert, exc)
        files = dict(self._files)
        present = set(self.directory.glob("*.pem")) if self.directory else set()
        for gone in set(files) - present:
            del files[gone]
        for cert in present:
            key = cert.with_suffix(".key")
            try:
                stamp = _stamp(cert, key)
                if cert in files and files[cert].stamp == stamp:
                    continue
                files[cert] = _Loaded(server_context(cert, key), _names(cert), stamp)
                log.info("loaded certificate %s for %s", cert.name, ", ".join(files[cert].names))
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.error("cannot load %s (kept the previous one, if any): %s", cert, exc)
        self._files = files
        self._by_name = {name: item.context for item in files.values() for name in item.names}

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        """Exact name first, then a wildcard for its parent, then the default certificate."""
        if server_name:
            name = server_name.lower().rstrip(".")
            by_name = self._by_name
            found = by_name.get(name)
            if found is None and "." in name:
                found = by_name.get("*." + name.split(".", 1)[1])
            if found is not None:
                return found
        return self._default.context

    def server_name(self, ssl_object: object) -> str | None:
        """The host name a connection's client asked for in its handshake (SNI), lower case
        and without a final dot; None if it named none."""
        return self._asked.get(ssl_object) if ssl_object is not None else None

    def _choose(
        self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        connection.context = self.context_for(server_name)
        name = _asked_name(server_name)
        if name is not None:
            self._asked[connection] = name


def _asked_name(server_name: str | None) -> str | None:
    """SNI names a DNS host (RFC 6066 §3). Some clients (wrk, old OpenSSL ones) put an IP
    address there when they connect to one; that names no host, so it binds nothing."""
    if not server_name:
        return None
    name = server_name.lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None
