"""Admin API tokens: `zgt_<id>_<secret>` text form and constant-time secret checks."""

from __future__ import annotations

import base64
import hashlib
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerogate.core.api_tokens import (
    PREFIX,
    TokenParts,
    format_token,
    hash_secret,
    parse_token,
    secret_matches,
)

TOKEN_ID = "0123456789abcdef"
SECRET = "A" * 20 + "-_" + "z9" * 10 + "Q"  # 43 characters of the base64url alphabet


def test_secret_fixture_shape() -> None:
    assert len(SECRET) == 43
    assert len(secrets.token_urlsafe(32)) == 43  # what the issuer generates


def test_format() -> None:
    assert format_token(TOKEN_ID, SECRET) == f"zgt_{TOKEN_ID}_{SECRET}"
    assert PREFIX == "zgt"


def test_round_trip() -> None:
    assert parse_token(format_token(TOKEN_ID, SECRET)) == TokenParts(TOKEN_ID, SECRET)


@settings(max_examples=100, deadline=None, database=None)
@given(
    token_id=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    secret_bytes=st.binary(min_size=32, max_size=32),
)
def test_round_trip_of_generated_tokens(token_id: str, secret_bytes: bytes) -> None:
    secret = base64.urlsafe_b64encode(secret_bytes).rstrip(b"=").decode()
    parts = parse_token(format_token(token_id, secret))
    assert parts == TokenParts(token_id, secret)


def test_secret_may_contain_underscores() -> None:
    secret = "_" * 43
    assert parse_token(format_token(TOKEN_ID, secret)) == TokenParts(TOKEN_ID, secret)


@pytest.mark.parametrize(
    "text",
    [
        "",
        f"zgx_{TOKEN_ID}_{SECRET}",  # wrong prefix
        f"ZGT_{TOKEN_ID}_{SECRET}",
        f"{TOKEN_ID}_{SECRET}",  # no prefix
        f"zgt_{TOKEN_ID}_{SECRET[:-1]}",  # short secret
        f"zgt_{TOKEN_ID}_{SECRET}A",  # long secret
        f"zgt_{TOKEN_ID}_{SECRET}_extra",  # extra part
        f"zgt_extra_{TOKEN_ID}_{SECRET}",
        f"zgt_{TOKEN_ID}{SECRET}",  # missing separator
        f"zgt_0123456789abcdeg_{SECRET}",  # non-hex id
        f"zgt_0123456789ABCDEF_{SECRET}",  # upper-case hex
        f"zgt_0123456789abcde_{SECRET}",  # short id
        f"zgt_0123456789abcdef0_{SECRET}",  # long id
        f"zgt_{TOKEN_ID}_{SECRET[:-1]}=",  # padding is not part of the alphabet
        f"zgt_{TOKEN_ID}_{SECRET[:-1]}+",
        f" zgt_{TOKEN_ID}_{SECRET}",
        f"zgt_{TOKEN_ID}_{SECRET} ",
        f"Bearer zgt_{TOKEN_ID}_{SECRET}",
    ],
)
def test_malformed_tokens_parse_to_none(text: str) -> None:
    assert parse_token(text) is None


def test_trailing_newline_is_malformed() -> None:
    assert parse_token(f"zgt_{TOKEN_ID}_{SECRET}\n") is None


def test_hash_is_sha256_hex() -> None:
    assert hash_secret(SECRET) == hashlib.sha256(SECRET.encode()).hexdigest()


def test_secret_matches() -> None:
    stored = hash_secret(SECRET)
    assert secret_matches(SECRET, stored)
    assert not secret_matches(SECRET[:-1] + "R", stored)
    assert not secret_matches("", stored)
    assert not secret_matches(SECRET, hash_secret(SECRET + "x"))
    assert not secret_matches(SECRET, stored.upper())  # stored form is lower-case hex
    assert not secret_matches(SECRET, "")


def test_stored_hash_is_not_the_secret() -> None:
    assert SECRET not in hash_secret(SECRET)
