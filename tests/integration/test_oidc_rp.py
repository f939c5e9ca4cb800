"""OIDC relying party end to end against a real OpenID Provider (npm oidc-provider on Node 22).

Each test starts its own provider on loopback; a scripted browser signs in on the provider's
development forms and stops at the redirect back to zerogate, whose query the relying party
then completes. Nothing is mocked: discovery, PKCE, the code exchange, the JWKS and userinfo
are the provider's real endpoints.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx2
import pytest

from zerogate.control.portal.oidc import (
    FederatedIdentity,
    OidcClient,
    OidcError,
    OidcErrorReason,
    OidcProviderConfig,
    PendingLogin,
    check_id_token_claims,
    parse_jwks,
    parse_metadata,
)
from zerogate.core.identity.claim_mapping import ClaimRule

TESTS = str(Path(__file__).resolve().parents[1])  # home of the oidc.fixture plugin
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
# Imported here before pytest loads it as a plugin (below): let pytest rewrite it all the same.
pytest.register_assert_rewrite("oidc.fixture")

from oidc.fixture import (  # noqa: E402
    RunningProvider,
    StartProvider,
    scripted_login,
    signing_key,
)

pytest_plugins = ["oidc.fixture"]
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

# Nothing listens here: the scripted browser stops at the redirect and hands us its query.
REDIRECT_URI = "http://127.0.0.1:9/portal/oidc/corp/callback"
RULES = (
    ClaimRule(claim="groups", equals="admins", add_groups=("zg-admins",)),
    ClaimRule(claim="email", suffix="@example.test", department="engineering", office="berlin"),
    ClaimRule(claim="groups", equals="sales", department="sales"),
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def provider(oidc_provider: StartProvider) -> RunningProvider:
    return oidc_provider([REDIRECT_URI])


@pytest.fixture
async def rp(provider: RunningProvider) -> AsyncIterator[OidcClient]:
    client = OidcClient(config_for(provider))
    yield client
    await client.aclose()


def config_for(provider: RunningProvider, **changes: object) -> OidcProviderConfig:
    config = OidcProviderConfig(
        name="corp",
        display_name="Corp SSO",
        issuer=provider.issuer,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        rules=RULES,
        copy_groups_claim="groups",  # these tests also cover copying the provider's groups
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def now() -> datetime:
    # The provider stamps tokens with the real clock, so the relying party must use it too.
    return datetime.now(UTC)


async def sign_in(
    rp: OidcClient, username: str, *, deny: bool = False
) -> tuple[PendingLogin, dict[str, str]]:
    """Begin a login, let the scripted browser sign in, return the pending login and callback."""
    url, pending = await rp.begin(REDIRECT_URI, now())
    async with httpx2.AsyncClient(follow_redirects=False, timeout=10) as browser:
        callback = await scripted_login(url, username, http=browser, deny=deny)
    return pending, dict(parse_qsl(urlsplit(callback).query))


async def login(rp: OidcClient, username: str) -> FederatedIdentity:
    pending, params = await sign_in(rp, username)
    return await rp.complete(pending, params, now())


async def test_alice_signs_in_with_mapped_groups(rp: OidcClient, provider: RunningProvider) -> None:
    started = now()
    identity = await login(rp, "alice")
    assert identity.provider == "corp"
    assert identity.issuer == provider.issuer
    assert identity.subject == "alice"
    assert identity.email == "alice@example.test"
    assert identity.email_verified is True
    assert identity.name == "Alice Example"
    assert identity.mapped.groups == ("admins", "eng", "zg-admins")
    assert identity.mapped.department == "engineering"
    assert identity.mapped.office == "berlin"
    assert identity.auth_time is not None
    assert started - timedelta(seconds=5) <= identity.auth_time <= now() + timedelta(seconds=5)
    assert identity.amr == ()


async def test_bob_gets_his_own_groups(rp: OidcClient) -> None:
    identity = await login(rp, "bob")
    assert identity.subject == "bob"
    assert identity.email_verified is False
    # bob@sales.example.test does not end with "@example.test": only the sales rule matches.
    assert identity.mapped.groups == ("sales",)
    assert (identity.mapped.department, identity.mapped.office) == ("sales", None)


async def test_authorization_request_uses_pkce_state_and_nonce(rp: OidcClient) -> None:
    url, pending = await rp.begin(REDIRECT_URI, now())
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == pending.state
    assert query["nonce"] == pending.nonce
    assert query["redirect_uri"] == REDIRECT_URI
    assert set(query["scope"].split()) == {"openid", "email", "profile", "groups"}
    assert pending.code_verifier not in url
    assert pending.code_verifier not in repr(pending)


async def expect(reason: OidcErrorReason, awaitable: Awaitable[object]) -> OidcError:
    with pytest.raises(OidcError) as caught:
        await awaitable
    assert caught.value.reason == reason, caught.value
    return caught.value


async def test_state_mismatch(rp: OidcClient) -> None:
    pending, params = await sign_in(rp, "alice")
    await expect(
        OidcErrorReason.STATE_MISMATCH, rp.complete(pending, {**params, "state": "x"}, now())
    )
    without = {k: v for k, v in params.items() if k != "state"}
    await expect(OidcErrorReason.STATE_MISMATCH, rp.complete(pending, without, now()))
    # The code was never spent: the genuine callback still works.
    assert (await rp.complete(pending, params, now())).subject == "alice"


async def test_replayed_callback_fails_at_the_provider(rp: OidcClient) -> None:
    pending, params = await sign_in(rp, "alice")
    await rp.complete(pending, params, now())
    error = await expect(OidcErrorReason.TOKEN_EXCHANGE_FAILED, rp.complete(pending, params, now()))
    assert error.provider_error == "invalid_grant"  # RFC 6749 §4.1.2: a code is single-use
    assert params["code"] not in str(error)


async def test_wrong_nonce(rp: OidcClient) -> None:
    pending, params = await sign_in(rp, "alice")
    tampered = dataclasses.replace(pending, nonce="another-login")
    await expect(OidcErrorReason.NONCE_MISMATCH, rp.complete(tampered, params, now()))


async def test_expired_pending_login(rp: OidcClient) -> None:
    pending, params = await sign_in(rp, "alice")
    late = pending.created_at + timedelta(minutes=11)
    await expect(OidcErrorReason.EXPIRED_LOGIN, rp.complete(pending, params, late))
    await expect(
        OidcErrorReason.EXPIRED_LOGIN,
        rp.complete(pending, params, now(), max_age=timedelta(0)),
    )


async def test_expired_id_token(rp: OidcClient) -> None:
    pending, params = await sign_in(rp, "alice")
    # Two hours on, the provider's one-hour ID token is past its exp (and past the skew).
    later = now() + timedelta(hours=2)
    await expect(
        OidcErrorReason.EXPIRED, rp.complete(pending, params, later, max_age=timedelta(hours=3))
    )


async def test_provider_error_is_reported_by_code_only(rp: OidcClient) -> None:
    pending, params = await sign_in(rp, "alice", deny=True)
    assert params["error"] == "access_denied"
    error = await expect(OidcErrorReason.PROVIDER_ERROR, rp.complete(pending, params, now()))
    assert error.provider_error == "access_denied"
    assert "aborted" not in str(error)  # the provider's free-text description stays out
    crafted = {**params, "error": 'bad"code\n'}
    error = await expect(OidcErrorReason.PROVIDER_ERROR, rp.complete(pending, crafted, now()))
    assert error.provider_error == "invalid_error_code"


async def test_issuer_mix_up(rp: OidcClient) -> None:
    pending, params = await sign_in(rp, "alice")
    assert "iss" in params  # RFC 9207: the provider names itself in the response
    other = {**params, "iss": "http://127.0.0.1:1"}
    await expect(OidcErrorReason.ISSUER_MISMATCH, rp.complete(pending, other, now()))
    without = {k: v for k, v in params.items() if k != "iss"}
    await expect(OidcErrorReason.ISSUER_MISMATCH, rp.complete(pending, without, now()))


async def test_discovery_must_name_the_configured_issuer(provider: RunningProvider) -> None:
    # Same server, but configured under another spelling of its issuer.
    client = OidcClient(config_for(provider, issuer=f"http://localhost:{provider.port}"))
    try:
        await expect(OidcErrorReason.ISSUER_MISMATCH, client.begin(REDIRECT_URI, now()))
    finally:
        await client.aclose()


async def test_unreachable_provider(oidc_provider: StartProvider) -> None:
    provider = oidc_provider([REDIRECT_URI])
    provider.stop()
    client = OidcClient(config_for(provider))
    try:
        await expect(OidcErrorReason.DISCOVERY_FAILED, client.begin(REDIRECT_URI, now()))
    finally:
        await client.aclose()


async def test_key_rotation_refetches_the_jwks(oidc_provider: StartProvider) -> None:
    provider = oidc_provider([REDIRECT_URI], jwks={"keys": [signing_key("key-a")]})
    requested: list[str] = []

    async def record(request: httpx2.Request) -> None:
        requested.append(request.url.path)

    # The caller's client carries every request of the relying party (and sees them).
    async with httpx2.AsyncClient(event_hooks={"request": [record]}) as http:
        client = OidcClient(config_for(provider), http=http)
        assert (await login(client, "alice")).subject == "alice"
        assert requested.count("/jwks") == 1
        # The provider now signs with key B only; the RP still caches key A.
        provider.restart({"keys": [signing_key("key-b")]})
        assert (await login(client, "bob")).subject == "bob"
        assert requested.count("/jwks") == 2
        # Known kid now: no further fetch.
        assert (await login(client, "alice")).subject == "alice"
        assert requested.count("/jwks") == 2
        await client.aclose()
    assert "/token" in requested
    assert "/me" not in requested  # the ID token carried email, name and groups itself


async def test_claims_only_in_userinfo(oidc_provider: StartProvider) -> None:
    # A provider that follows OIDC Core §5.4 to the letter: the ID token carries only sub.
    provider = oidc_provider([REDIRECT_URI], conform=True)
    requested: list[str] = []

    async def record(request: httpx2.Request) -> None:
        requested.append(request.url.path)

    async with httpx2.AsyncClient(event_hooks={"request": [record]}) as http:
        client = OidcClient(config_for(provider), http=http)
        identity = await login(client, "alice")
        await client.aclose()
    assert "/me" in requested
    assert identity.email == "alice@example.test"
    assert identity.name == "Alice Example"
    assert identity.mapped.groups == ("admins", "eng", "zg-admins")


def test_config_refuses_unsafe_settings() -> None:
    good = {
        "name": "corp",
        "display_name": "Corp",
        "issuer": "https://idp.example.test",
        "client_id": "c",
        "client_secret": "s3cret",
    }
    assert "s3cret" not in repr(OidcProviderConfig(**good))  # type: ignore[arg-type]
    for change in (
        {"issuer": "http://idp.example.test"},  # plain http off loopback
        {"issuer": "https://idp.example.test/?tenant=1"},
        {"name": "Corp SSO"},
        {"scopes": ("email",)},
        {"client_secret": ""},
        {"clock_skew": timedelta(seconds=-1)},
    ):
        with pytest.raises(ValueError):
            OidcProviderConfig(**{**good, **change})  # type: ignore[arg-type]


def test_discovery_never_allows_none_or_shared_secret_algorithms() -> None:
    document = {
        "issuer": "https://idp.example.test",
        "authorization_endpoint": "https://idp.example.test/auth",
        "token_endpoint": "https://idp.example.test/token",
        "jwks_uri": "https://idp.example.test/jwks",
        "id_token_signing_alg_values_supported": ["none", "HS256", "ES256", "RS256", "XX1"],
    }
    metadata = parse_metadata(document, "https://idp.example.test", now())
    assert metadata.id_token_algorithms == ("ES256", "RS256")
    only_unsafe = {**document, "id_token_signing_alg_values_supported": ["none", "HS512"]}
    with pytest.raises(OidcError) as caught:
        parse_metadata(only_unsafe, "https://idp.example.test", now())
    assert caught.value.reason == OidcErrorReason.DISCOVERY_FAILED


def test_jwks_keeps_public_signing_keys_only() -> None:
    private = signing_key("private")
    public = {k: v for k, v in signing_key("public").items() if k != "d"}
    encryption = {**{k: v for k, v in signing_key("enc").items() if k != "d"}, "use": "enc"}
    document = {"keys": [private, public, encryption, {"kty": "XYZ"}, "junk"]}
    assert [key.kid for key in parse_jwks(document)] == ["public"]


CLAIMS_AT = datetime(2030, 1, 1, tzinfo=UTC)
T0 = int(CLAIMS_AT.timestamp())
GOOD_CLAIMS: dict[str, object] = {
    "iss": "https://idp.example.test",
    "aud": "zerogate",
    "sub": "alice",
    "nonce": "n-1",
    "iat": T0,
    "exp": T0 + 300,
}


def check(claims: dict[str, object], at: datetime = CLAIMS_AT) -> None:
    check_id_token_claims(
        claims,
        issuer="https://idp.example.test",
        client_id="zerogate",
        nonce="n-1",
        now=at,
        clock_skew=timedelta(seconds=60),
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://other.example.test"}, OidcErrorReason.ISSUER_MISMATCH),
        ({"aud": "another-client"}, OidcErrorReason.AUDIENCE_MISMATCH),
        ({"aud": ["zerogate", "another-client"]}, OidcErrorReason.AUDIENCE_MISMATCH),
        (
            {"aud": ["zerogate", "another-client"], "azp": "another-client"},
            OidcErrorReason.AUDIENCE_MISMATCH,
        ),
        ({"azp": "another-client"}, OidcErrorReason.AUDIENCE_MISMATCH),
        ({"aud": 7}, OidcErrorReason.AUDIENCE_MISMATCH),
        ({"exp": T0 - 61}, OidcErrorReason.EXPIRED),
        ({"exp": None}, OidcErrorReason.BAD_ID_TOKEN),
        ({"exp": "tomorrow"}, OidcErrorReason.BAD_ID_TOKEN),
        ({"iat": T0 + 120}, OidcErrorReason.BAD_ID_TOKEN),  # in the future
        ({"nbf": T0 + 120}, OidcErrorReason.BAD_ID_TOKEN),
        ({"nonce": None}, OidcErrorReason.NONCE_MISMATCH),
        ({"nonce": "n-2"}, OidcErrorReason.NONCE_MISMATCH),
        ({"nonce": "n-1é"}, OidcErrorReason.NONCE_MISMATCH),
        ({"sub": ""}, OidcErrorReason.BAD_ID_TOKEN),
        ({"sub": "a" * 256}, OidcErrorReason.BAD_ID_TOKEN),
    ],
)
def test_id_token_claim_checks(changes: dict[str, object], reason: OidcErrorReason) -> None:
    claims = {k: v for k, v in {**GOOD_CLAIMS, **changes}.items() if v is not None}
    with pytest.raises(OidcError) as caught:
        check(claims)
    assert caught.value.reason == reason


def test_id_token_claims_accepted_within_the_skew() -> None:
    check(dict(GOOD_CLAIMS))
    check({**GOOD_CLAIMS, "aud": ["zerogate", "api"], "azp": "zerogate"})
    check({**GOOD_CLAIMS, "exp": T0 - 59})  # expired, but within 60 s of skew
    check({**GOOD_CLAIMS, "iat": T0 + 59})  # clock ahead, within the skew
