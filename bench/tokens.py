"""Benchmark: access tokens issued and verified per second, single thread, with latency percentiles.

Every gateway verifies a token on every request, so `TokenVerifier.verify` is on the hot path.
Measured side by side with two references: the raw ECDSA P-256 verification that no verifier can
beat (cryptography/OpenSSL), and joserfc's own `jwt.decode` + `JWTClaimsRegistry` (a generic
verifier without our strictness or reason codes). Each row runs for `--seconds` or `--max-count`
calls, whichever ends first. Run: `.venv/bin/python bench/tokens.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import cryptography
import joserfc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey
from rich.console import Console
from rich.table import Table

from zerogate.core.tokens import (
    AccessClaims,
    TokenError,
    TokenVerifier,
    issue_access_token,
    jwks,
    new_signing_key,
)

NOW = datetime(2031, 7, 1, 9, 30, tzinfo=UTC)
ISSUER = "https://control.zerogate.test"
THUMBPRINT = "6bJ0p2Yk3d8cIxZ0oQm0m8W3Jt0yq2u1vYc9n7d3b1E"
CLAIMS = AccessClaims(
    issuer=ISSUER,
    subject="user:alice",
    audience="wiki",
    session_id="sess-0123456789abcdef",
    principal_kind="person",
    username="alice",
    groups=("engineering", "oncall", "vpn-replacement-pilot"),
    auth_time=NOW - timedelta(minutes=5),
    mfa_time=NOW - timedelta(minutes=5),
    amr=("pwd", "otp", "mfa"),
    issued_at=NOW,
    expires_at=NOW + timedelta(minutes=15),
    token_id="3q2-7wAAAAAAAAAAAAAAAA",
    cnf_x5t_s256=None,
    device_id="dev-42",
)


@dataclasses.dataclass
class Row:
    name: str
    count: int
    seconds: float
    samples_ns: list[int]

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    def percentile_us(self, q: float) -> float:
        ordered = sorted(self.samples_ns)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def measure(name: str, call: Callable[[], object], seconds: float, max_count: int) -> Row:
    for _ in range(200):  # warm caches and the allocator before timing
        call()
    samples: list[int] = []
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    started = clock()
    while len(samples) < max_count:
        before = clock()
        call()
        after = clock()
        samples.append(after - before)
        if after >= deadline:
            break
    return Row(name, len(samples), (clock() - started) / 1e9, samples)


def rows(seconds: float, max_count: int) -> list[Row]:
    old_key, key = new_signing_key(NOW - timedelta(days=30)), new_signing_key(NOW)
    token = issue_access_token(key, CLAIMS)
    old_token = issue_access_token(old_key, CLAIMS)
    bound = issue_access_token(key, dataclasses.replace(CLAIMS, cnf_x5t_s256=THUMBPRINT))
    one = TokenVerifier(jwks([key]), issuer=ISSUER)
    two = TokenVerifier(jwks([old_key, key]), issuer=ISSUER)
    # A real ES256 signature by another key over the same header and payload.
    impostor = new_signing_key(NOW)
    forged = token.rsplit(".", 1)[0] + "." + issue_access_token(impostor, CLAIMS).rsplit(".")[-1]

    def rejected(verifier: TokenVerifier, text: str) -> Callable[[], object]:
        def call() -> object:
            try:
                return verifier.verify(text, audience="wiki", now=NOW)
            except TokenError as error:
                return error

        return call

    signing_input = token.rsplit(".", 1)[0].encode()
    signature = key.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    public = key.private_key.public_key()
    joserfc_key = ECKey.import_key(public)
    registry = jwt.JWTClaimsRegistry(
        now=int(NOW.timestamp()), leeway=30, iss={"essential": True, "value": ISSUER}
    )

    def joserfc_decode() -> object:
        decoded = jwt.decode(token, joserfc_key, algorithms=["ES256"])
        registry.validate(decoded.claims)
        return decoded

    plan: list[tuple[str, Callable[[], object]]] = [
        ("issue (ES256 sign)", lambda: issue_access_token(key, CLAIMS)),
        ("verify, 1-key JWKS", lambda: one.verify(token, audience="wiki", now=NOW)),
        ("verify, 2-key JWKS, new key", lambda: two.verify(token, audience="wiki", now=NOW)),
        ("verify, 2-key JWKS, old key", lambda: two.verify(old_token, audience="wiki", now=NOW)),
        (
            "verify, cert-bound (cnf)",
            lambda: one.verify(bound, audience="wiki", now=NOW, client_cert_x5t_s256=THUMBPRINT),
        ),
        ("reject: bad signature", rejected(one, forged)),
        ("reject: alg none", rejected(one, "eyJhbGciOiJub25lIn0.e30.")),
        (
            "ref: raw ECDSA P-256 verify",
            lambda: public.verify(signature, signing_input, ec.ECDSA(hashes.SHA256())),
        ),
        ("ref: joserfc jwt.decode+claims", joserfc_decode),
    ]
    return [measure(name, call, seconds, max_count) for name, call in plan]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per row (default 3)")
    parser.add_argument("--max-count", type=int, default=500_000, help="calls per row at most")
    args = parser.parse_args()
    table = Table(
        title=(
            f"Access tokens, single thread — Python {platform.python_version()}, "
            f"cryptography {cryptography.__version__}, joserfc {joserfc.__version__}"
        )
    )
    for column in ("operation", "count", "per second", "p50 µs", "p99 µs", "mean µs"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for row in rows(args.seconds, args.max_count):
        table.add_row(
            row.name,
            f"{row.count:,}",
            f"{row.per_second:,.0f}",
            f"{row.percentile_us(0.50):.1f}",
            f"{row.percentile_us(0.99):.1f}",
            f"{statistics.fmean(row.samples_ns) / 1000:.1f}",
        )
    Console(width=100).print(table)


if __name__ == "__main__":
    main()
