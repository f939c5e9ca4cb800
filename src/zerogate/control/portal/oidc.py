"""OpenID Connect relying party: single sign-on with any standards-compliant provider.

Place in the flow: login portal ("Sign in with <provider>") → **this module** → identity
(core/identity/claim_mapping) → the portal creates or updates the user and its session.

Theory of operation. A login is two calls around the browser's visit to the provider:

* `begin` discovers the provider (cached), makes a fresh `state`, `nonce` and PKCE verifier and
  returns the authorization URL with a `PendingLogin`, which the caller stores server-side
  under `state` (never in the browser).
* `complete` takes that pending login and the callback's query parameters, checks them, trades
  the code for tokens over the back channel, verifies the ID token, reads userinfo when the ID
  token lacks claims zerogate needs, and maps the claims to groups, department and office.

Invariants:
1. Nothing from the browser is believed: the callback is bound to its pending login by `state`,
   the code is bound to this client by PKCE and to this login by `nonce`, and every claim comes
   from an ID token whose signature, issuer, audience and lifetime were checked first.
2. Every failure is an `OidcError` with a stable reason code and a message that is safe to log
   and show: never a code, token, verifier or secret.
3. Time is an argument (`now`); nothing here reads the clock, so tests can move it.
4. Only asymmetric signatures the provider advertises are accepted: never "none", never HS*
   (whose key would be the client secret, shared with whoever else holds it).
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import re
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx2
from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
    AsyncOAuth2Client,
    OAuthError,
)
from joserfc import jws, jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import JWKRegistry, Key
from joserfc.jws import JWSRegistry

from zerogate.core.identity.claim_mapping import ClaimRule, MappedIdentity, map_claims

DISCOVERY_TTL = timedelta(hours=1)
JWKS_TTL = timedelta(hours=1)
HTTP_TIMEOUT = httpx2.Timeout(10.0)
CLIENT_AUTH_METHOD = "client_secret_basic"  # RFC 6749 §2.3.1: supported by every provider
_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
# RFC 6749 §4.1.2.1: error codes are printable ASCII without '"' and '\'.
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")


class OidcErrorReason(enum.StrEnum):
    """Why a login failed. Stable values: audit events and metrics reuse them."""

    DISCOVERY_FAILED = "discovery_failed"
    EXPIRED_LOGIN = "expired_login"
    STATE_MISMATCH = "state_mismatch"
    ISSUER_MISMATCH = "issuer_mismatch"
    PROVIDER_ERROR = "provider_error"
    MISSING_CODE = "missing_code"
    TOKEN_EXCHANGE_FAILED = "token_exchange_failed"
    JWKS_FAILED = "jwks_failed"
    UNKNOWN_KEY = "unknown_key"
    BAD_ID_TOKEN = "bad_id_token"
    AUDIENCE_MISMATCH = "audience_mismatch"
    EXPIRED = "expired"
    NONCE_MISMATCH = "nonce_mismatch"
    USERINFO_FAILED = "userinfo_failed"


class OidcError(Exception):
    """A failed login. `message` is safe to log and to show; `provider_error` is the provider's
    own error code (RFC 6749 §4.1.2.1) when it sent one."""

    def __init__(
        self, reason: OidcErrorReason, message: str, *, provider_error: str | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.provider_error = provider_error


def _secure_url(url: str) -> bool:
    # OIDC Discovery §3 requires https; plain http only on loopback, for development and tests.
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in _LOOPBACK


@dataclass(frozen=True, slots=True)
class OidcProviderConfig:
    name: str  # slug used in URLs: /portal/oidc/<name>/callback
    display_name: str  # "Sign in with <display_name>"
    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ("openid", "email", "profile", "groups")
    rules: tuple[ClaimRule, ...] = ()
    clock_skew: timedelta = timedelta(seconds=60)
    # Off by default: copying the provider's group names lets whoever administers the provider
    # put people into any same-named zerogate group, `admins` included. Rules are explicit.
    copy_groups_claim: str | None = None

    def __post_init__(self) -> None:
        if not _SLUG.fullmatch(self.name):
            raise ValueError(f"provider name {self.name!r} must be a slug like 'corp-sso'")
        if not _secure_url(self.issuer):
            raise ValueError(f"issuer must be https (http only on loopback): {self.issuer!r}")
        # OIDC Discovery §2: the issuer has no query or fragment.
        if urlsplit(self.issuer).query or urlsplit(self.issuer).fragment:
            raise ValueError("issuer must not have a query or fragment")
        if "openid" not in self.scopes:
            raise ValueError("scopes must include 'openid'")
        if not self.client_id or not self.client_secret:
            raise ValueError("client_id and client_secret are required")
        if self.clock_skew < timedelta(0):
            raise ValueError("clock_skew must not be negative")

    def __repr__(self) -> str:  # keep the client secret out of logs and tracebacks
        return f"OidcProviderConfig(name={self.name!r}, issuer={self.issuer!r})"


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """A started login. Stored server-side, keyed by `state`; never sent to the browser."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    created_at: datetime

    def __repr__(self) -> str:  # the verifier and nonce are secrets until the login completes
        return f"PendingLogin(provider={self.provider!r}, created_at={self.created_at!r})"


@dataclass(frozen=True, slots=True)
class FederatedIdentity:
    provider: str
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    mapped: MappedIdentity
    auth_time: datetime | None
    amr: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of the discovery document (OIDC Discovery §3) this relying party uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    id_token_algorithms: tuple[str, ...]
    iss_parameter_supported: bool
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class _KeySet:
    keys: tuple[Key, ...]
    fetched_at: datetime


class _ClientTransport(httpx2.AsyncBaseTransport):
    """Sends authlib's requests through a caller's client (its pool, TLS and hooks)."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self._client = client

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._client.send(request)


class OidcClient:
    """The relying party for one provider. One instance per provider, shared by all logins."""

    def __init__(
        self,
        config: OidcProviderConfig,
        *,
        http: httpx2.AsyncClient | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.config = config
        # With `http`, its own TLS settings apply and `verify` is unused; the caller closes it.
        transport = _ClientTransport(http) if http is not None else None
        self._oauth = AsyncOAuth2Client(
            client_id=config.client_id,
            client_secret=config.client_secret,
            token_endpoint_auth_method=CLIENT_AUTH_METHOD,
            scope=" ".join(config.scopes),
            code_challenge_method="S256",
            verify=verify,
            timeout=HTTP_TIMEOUT,
            follow_redirects=False,
            transport=transport,
        )
        self._metadata: ProviderMetadata | None = None
        self._keys: _KeySet | None = None
        self._lock = asyncio.Lock()  # one discovery or JWKS fetch at a time, not one per login

    async def aclose(self) -> None:
        await self._oauth.aclose()

    # -- begin -----------------------------------------------------------------------------

    async def begin(self, redirect_uri: str, now: datetime) -> tuple[str, PendingLogin]:
        """The authorization URL to send the browser to, and the login to keep server-side."""
        _check_aware(now)
        metadata = await self.metadata(now)
        pending = PendingLogin(
            provider=self.config.name,
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),  # RFC 7636 §4.1: 43-128 chars; 64 here
            redirect_uri=redirect_uri,
            created_at=now,
        )
        # OIDC Core §3.1.2.1 with RFC 7636 §4.3: code flow, S256 challenge, state and nonce.
        url, _ = self._oauth.create_authorization_url(
            metadata.authorization_endpoint,
            state=pending.state,
            code_verifier=pending.code_verifier,
            nonce=pending.nonce,
            redirect_uri=redirect_uri,
        )
        return str(url), pending

    async def metadata(self, now: datetime) -> ProviderMetadata:
        """The provider's discovery document, fetched at most once per `DISCOVERY_TTL`."""
        async with self._lock:
            cached = self._metadata
            if cached is None or now - cached.fetched_at >= DISCOVERY_TTL:
                # OIDC Discovery §4: drop a terminating "/" of the issuer, then append.
                url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = await self._get_json(url, OidcErrorReason.DISCOVERY_FAILED, "discovery")
                cached = self._metadata = parse_metadata(document, self.config.issuer, now)
            return cached

    # -- complete --------------------------------------------------------------------------

    async def complete(
        self,
        pending: PendingLogin,
        params: Mapping[str, str],
        now: datetime,
        max_age: timedelta = timedelta(minutes=10),
    ) -> FederatedIdentity:
        """Check the provider's callback `params` against `pending` and return who logged in."""
        _check_aware(now)
        # Local checks first: a forged or stale callback costs no request to the provider.
        self._check_pending(pending, params, now, max_age)
        metadata = await self.metadata(now)
        code = _authorization_code(params, metadata)
        tokens = await self._exchange_code(metadata, pending, code)
        claims = await self._verify_id_token(metadata, tokens["id_token"], pending.nonce, now)
        if self._needs_userinfo(claims) and metadata.userinfo_endpoint:
            userinfo = await self._userinfo(metadata.userinfo_endpoint, tokens, claims["sub"])
            claims = {**userinfo, **claims}  # the signed ID token wins over userinfo
        return self._identity(claims)

    def _check_pending(
        self, pending: PendingLogin, params: Mapping[str, str], now: datetime, max_age: timedelta
    ) -> None:
        if pending.provider != self.config.name:
            raise OidcError(OidcErrorReason.STATE_MISMATCH, "login is for another provider")
        if now - pending.created_at > max_age:
            raise OidcError(OidcErrorReason.EXPIRED_LOGIN, "the login took too long; start again")
        # RFC 6749 §10.12 (CSRF): the callback must carry the state of this pending login.
        if not _same(params.get("state", ""), pending.state):
            raise OidcError(OidcErrorReason.STATE_MISMATCH, "state does not match the login")

    async def _exchange_code(
        self, metadata: ProviderMetadata, pending: PendingLogin, code: str
    ) -> dict[str, Any]:
        # OIDC Core §3.1.3.1 / RFC 6749 §4.1.3, with the PKCE verifier (RFC 7636 §4.5) and
        # client_secret_basic (RFC 6749 §2.3.1).
        try:
            token = await self._oauth.fetch_token(
                metadata.token_endpoint,
                grant_type="authorization_code",
                code=code,
                redirect_uri=pending.redirect_uri,
                code_verifier=pending.code_verifier,
            )
        except OAuthError as exc:
            safe = _safe_error_code(exc.error)
            raise OidcError(
                OidcErrorReason.TOKEN_EXCHANGE_FAILED,
                f"token endpoint answered {safe}",
                provider_error=safe,
            ) from None  # the exception's description is the provider's free text
        except (httpx2.HTTPError, ValueError) as exc:
            raise OidcError(
                OidcErrorReason.TOKEN_EXCHANGE_FAILED,
                f"token endpoint failed: {type(exc).__name__}",
            ) from None
        finally:
            # authlib keeps the last token on the client; it belongs to one user, not to us.
            self._oauth.token = None
        tokens = dict(token)
        # OIDC Core §3.1.3.3: a successful response has a Bearer access token and an ID token.
        if not isinstance(tokens.get("id_token"), str):
            raise OidcError(OidcErrorReason.TOKEN_EXCHANGE_FAILED, "token response has no ID token")
        if str(tokens.get("token_type", "")).lower() != "bearer":
            raise OidcError(OidcErrorReason.TOKEN_EXCHANGE_FAILED, "token type is not Bearer")
        return tokens

    # -- ID token (OIDC Core §3.1.3.7) ----------------------------------------------------

    async def _verify_id_token(
        self, metadata: ProviderMetadata, id_token: str, nonce: str, now: datetime
    ) -> dict[str, Any]:
        try:
            header = jws.extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError) as exc:
            # Five parts would be an encrypted ID token, which zerogate does not request.
            raise OidcError(OidcErrorReason.BAD_ID_TOKEN, "ID token is not a JWS") from exc
        alg = header.get("alg")
        # §3.1.3.7 steps 6-7: only the provider's advertised asymmetric algorithms.
        if not isinstance(alg, str) or alg not in metadata.id_token_algorithms:
            raise OidcError(OidcErrorReason.BAD_ID_TOKEN, f"ID token algorithm {alg!r} refused")
        key = await self._signing_key(metadata, header.get("kid"), now)
        try:
            claims = jwt.decode(id_token, key, algorithms=[alg]).claims
        except (JoseError, ValueError) as exc:
            error = exc.error if isinstance(exc, JoseError) else "invalid_payload"
            raise OidcError(
                OidcErrorReason.BAD_ID_TOKEN, f"ID token does not verify: {error}"
            ) from exc
        check_id_token_claims(
            claims,
            issuer=metadata.issuer,
            client_id=self.config.client_id,
            nonce=nonce,
            now=now,
            clock_skew=self.config.clock_skew,
        )
        return claims

    async def _signing_key(self, metadata: ProviderMetadata, kid: object, now: datetime) -> Key:
        keys = await self._key_set(metadata, now, refresh=False)
        key = _find_key(keys.keys, kid)
        if key is None and kid is not None:
            # Key rotation: a new kid means the provider published a new key since we looked.
            # The ID token came from the provider over the back channel, so a stranger cannot
            # make us refetch at will; the lock makes concurrent logins share one fetch.
            keys = await self._key_set(metadata, now, refresh=True, stale=keys)
            key = _find_key(keys.keys, kid)
        if key is None:
            raise OidcError(OidcErrorReason.UNKNOWN_KEY, "ID token is signed with an unknown key")
        return key

    async def _key_set(
        self,
        metadata: ProviderMetadata,
        now: datetime,
        *,
        refresh: bool,
        stale: _KeySet | None = None,
    ) -> _KeySet:
        async with self._lock:
            cached = self._keys
            # Another login may have refetched while we waited for the lock: use its result.
            wants_new = refresh and cached is stale
            if cached is not None and not wants_new and now - cached.fetched_at < JWKS_TTL:
                return cached
            document = await self._get_json(metadata.jwks_uri, OidcErrorReason.JWKS_FAILED, "JWKS")
            self._keys = _KeySet(parse_jwks(document), now)
            return self._keys

    # -- userinfo (OIDC Core §5.3) ---------------------------------------------------------

    def _needs_userinfo(self, claims: Mapping[str, Any]) -> bool:
        wanted = {"email": "email", "groups": "groups", "profile": "name"}
        return any(s in self.config.scopes and c not in claims for s, c in wanted.items())

    async def _userinfo(self, url: str, tokens: Mapping[str, Any], sub: str) -> dict[str, Any]:
        access_token = tokens.get("access_token")
        if not isinstance(access_token, str):
            raise OidcError(OidcErrorReason.USERINFO_FAILED, "token response has no access token")
        headers = {"Authorization": f"Bearer {access_token}"}
        document = await self._get_json(url, OidcErrorReason.USERINFO_FAILED, "userinfo", headers)
        if not isinstance(document, dict):
            raise OidcError(OidcErrorReason.USERINFO_FAILED, "userinfo is not a JSON object")
        # §5.3.4: userinfo of another subject must not be mixed into this identity.
        if document.get("sub") != sub:
            raise OidcError(OidcErrorReason.USERINFO_FAILED, "userinfo is for another subject")
        return document

    # -- shared ----------------------------------------------------------------------------

    async def _get_json(
        self,
        url: str,
        reason: OidcErrorReason,
        what: str,
        headers: Mapping[str, str] | None = None,
    ) -> object:
        try:
            # auth=None: never attach a token authlib may hold to a metadata request.
            response = await self._oauth.get(url, headers=headers, auth=None)
        except httpx2.HTTPError as exc:
            raise OidcError(reason, f"{what} request failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise OidcError(reason, f"{what} answered HTTP {response.status_code}")
        try:
            document: object = response.json()
        except ValueError:
            raise OidcError(reason, f"{what} is not JSON") from None
        return document

    def _identity(self, claims: Mapping[str, Any]) -> FederatedIdentity:
        email = claims.get("email")
        name = claims.get("name")
        amr = claims.get("amr")
        return FederatedIdentity(
            provider=self.config.name,
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            email=email if isinstance(email, str) else None,
            # Strictly the boolean true (OIDC Core §5.1): anything else is "not verified".
            email_verified=claims.get("email_verified") is True,
            name=name if isinstance(name, str) else None,
            mapped=map_claims(
                claims, self.config.rules, copy_groups_claim=self.config.copy_groups_claim
            ),
            auth_time=_timestamp(claims.get("auth_time")),
            amr=tuple(v for v in amr if isinstance(v, str)) if isinstance(amr, list) else (),
        )


def check_id_token_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: datetime,
    clock_skew: timedelta,
) -> None:
    """OIDC Core §3.1.3.7 steps 2-5 and 9-11 on the claims of a signature-checked ID token."""
    # Step 2: the issuer exactly.
    if claims.get("iss") != issuer:
        raise OidcError(OidcErrorReason.ISSUER_MISMATCH, "ID token is from another issuer")
    # Steps 3-5: we are an audience; with several audiences we must be the authorized party.
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        raise OidcError(OidcErrorReason.AUDIENCE_MISMATCH, "ID token is for another client")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise OidcError(OidcErrorReason.AUDIENCE_MISMATCH, "ID token azp is another client")
    # Steps 9-10: exp and iat, with the configured leeway for clock skew.
    registry = jwt.JWTClaimsRegistry(
        now=int(now.timestamp()),
        leeway=int(clock_skew.total_seconds()),
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError:
        raise OidcError(OidcErrorReason.EXPIRED, "ID token has expired") from None
    except ClaimError as exc:
        raise OidcError(OidcErrorReason.BAD_ID_TOKEN, f"ID token {exc.claim!r} invalid") from None
    # Step 11: the nonce of this login, so a token from another login cannot be replayed.
    got = claims.get("nonce")
    if not isinstance(got, str) or not _same(got, nonce):
        raise OidcError(OidcErrorReason.NONCE_MISMATCH, "ID token nonce does not match")
    # §2: sub is a string of at most 255 ASCII characters.
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= 255 or not sub.isascii():
        raise OidcError(OidcErrorReason.BAD_ID_TOKEN, "ID token has no valid sub")


def _authorization_code(params: Mapping[str, str], metadata: ProviderMetadata) -> str:
    """The code from an authorization response whose state was already checked."""
    # RFC 9207 §2.4: mix-up defence; `iss` is required when the provider says it sends it.
    iss = params.get("iss")
    if (iss is None and metadata.iss_parameter_supported) or (
        iss is not None and iss != metadata.issuer
    ):
        raise OidcError(OidcErrorReason.ISSUER_MISMATCH, "response is from another issuer")
    # RFC 6749 §4.1.2.1: report the provider's error code, never its free-text description.
    if "error" in params:
        safe = _safe_error_code(params["error"])
        raise OidcError(
            OidcErrorReason.PROVIDER_ERROR,
            f"the identity provider answered {safe}",
            provider_error=safe,
        )
    code = params.get("code")
    if not code:
        raise OidcError(OidcErrorReason.MISSING_CODE, "the callback carries no code")
    return code


def _safe_error_code(code: object) -> str:
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "invalid_error_code"


def parse_metadata(document: object, issuer: str, now: datetime) -> ProviderMetadata:
    """Check a discovery document fetched for `issuer` and keep what the flow needs."""
    if not isinstance(document, dict):
        raise OidcError(OidcErrorReason.DISCOVERY_FAILED, "discovery is not a JSON object")
    # OIDC Discovery §4.3: the document must name exactly the issuer we asked.
    if document.get("issuer") != issuer:
        raise OidcError(OidcErrorReason.ISSUER_MISMATCH, "discovery names another issuer")
    endpoints: dict[str, str] = {}
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(field)
        if not isinstance(value, str) or not _secure_url(value):
            raise OidcError(OidcErrorReason.DISCOVERY_FAILED, f"{field} missing or not https")
        endpoints[field] = value
    userinfo = document.get("userinfo_endpoint")
    # Discovery §3: RS256 is the default when the provider does not list algorithms.
    advertised = document.get("id_token_signing_alg_values_supported", ["RS256"])
    algorithms = tuple(
        a
        for a in (advertised if isinstance(advertised, list) else [])
        if isinstance(a, str)
        and a != "none"
        and not a.startswith("HS")
        and a in JWSRegistry.algorithms
    )
    if not algorithms:
        raise OidcError(OidcErrorReason.DISCOVERY_FAILED, "no usable ID token algorithm")
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        jwks_uri=endpoints["jwks_uri"],
        userinfo_endpoint=userinfo if isinstance(userinfo, str) else None,
        id_token_algorithms=algorithms,
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported")
        is True,
        fetched_at=now,
    )


def parse_jwks(document: object) -> tuple[Key, ...]:
    """The public signature keys of a JWK Set document (RFC 7517 §5)."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise OidcError(OidcErrorReason.JWKS_FAILED, "JWKS has no keys array")
    keys: list[Key] = []
    for entry in entries:
        # RFC 7517 §5: skip keys we do not understand; §4.2: skip encryption keys.
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = JWKRegistry.import_key(entry)
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        if not key.is_private:  # a provider publishing private keys is broken; refuse them
            keys.append(key)
    return tuple(keys)


def _check_aware(now: datetime) -> None:
    # A naive datetime would be read as local time by .timestamp(): exp checks off by hours.
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")


def _same(a: str, b: str) -> bool:
    # Constant time, so a timing probe learns nothing; bytes, as compare_digest refuses
    # non-ASCII str (and the callback is attacker input).
    return hmac.compare_digest(a.encode(), b.encode())


def _find_key(keys: tuple[Key, ...], kid: object) -> Key | None:
    if kid is None:
        # OIDC Core §10.1: without a kid there must be exactly one key to choose.
        return keys[0] if len(keys) == 1 else None
    return next((k for k in keys if k.kid == kid), None)


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
