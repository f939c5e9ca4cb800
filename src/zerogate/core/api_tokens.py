"""Admin API tokens: their text form, and checking a presented secret against a stored hash.

A token reads `zgt_<id>_<secret>`: the id finds the record, the secret is compared as a
SHA-256 digest in constant time. The secrets are 256 random bits, so a fast hash is enough
(no password stretching needed), and the database never holds anything that grants access.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass

PREFIX = "zgt"
_TOKEN_RE = re.compile(r"zgt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


class Scope(enum.StrEnum):
    ADMIN = "admin"  # read and write everything
    AUDITOR = "auditor"  # read only, the audit log included
    SCIM = "scim"  # only the SCIM provisioning endpoints, for an identity provider
    GATEWAY = "gateway"  # a gateway: fetch policy snapshots, deliver audit events; nothing else


@dataclass(frozen=True, slots=True)
class TokenParts:
    token_id: str
    secret: str


def gateway_may_name(bound: str, named: str | None) -> bool:
    """Whether a token bound to gateway `bound` may ship events that name `named` (None: no
    gateway): the gateway itself, or one of its workers (`<name>-<index>`, see `zerogate
    gateway`)."""
    if named is None:
        return False
    if named == bound:
        return True
    worker = named.removeprefix(bound + "-")
    return worker != named and worker.isascii() and worker.isdigit()


def format_token(token_id: str, secret: str) -> str:
    return f"{PREFIX}_{token_id}_{secret}"


def parse_token(text: str) -> TokenParts | None:
    match = _TOKEN_RE.fullmatch(text)
    return TokenParts(match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
