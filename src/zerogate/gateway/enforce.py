"""Per-request enforcement: who is asking, for which app, and what the policy snapshot says.

Where it sits: `http.py` calls `Enforcer.handle` once per request head, on the event loop,
and forwards or answers with what it returns. Nothing here waits on the network: the token
is verified locally against the JWKS that came with the snapshot, the decision comes from the
compiled snapshot in memory, and the audit event goes to a sink (the spool) when the exchange
ends.

Theory:
1. The app is found by the request's Host. An unknown host and an app this user has no rule
   for get the same 404 page, so the set of apps cannot be mapped from outside.
2. No valid token for the app (missing, expired, forged, another app's): a browser (GET or
   HEAD) goes to the portal's `/portal/authorize`, which sends it back to
   `/.zerogate/callback` on the app's own hostname with a token for that app; the callback
   sets it as a host-only cookie and returns to the page. A random `state`, in the URL and in
   a cookie, ties that round trip to the browser that started it: the callback takes no
   token without it (login CSRF). Other methods get 401.
3. Every request is decided. Two things are remembered: the token's signature check (by the
   token's text, until its expiry), and a decision that is timeless (no condition that took
   part in it reads the clock, see `CompiledPolicy.decide_once`), by everything its request
   context is built from: the token (whose claims give who is asking), the app, the method,
   the path and the client's address. Both are dropped with the snapshot they came from;
   revocation is checked on every request before either is used.
4. Allowed requests reach the upstream with the token as `X-Zerogate-Assertion`: a JWT for
   exactly that app's audience, short-lived, verifiable against the control plane's JWKS.
5. `/.zerogate/sign_out` on any app's hostname never reaches the app: it clears that app's
   cookies and sends the browser to the portal, where signing out revokes the session, and
   with it every app's token, at every gateway with the next snapshot.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import itertools
import logging
import os
import secrets
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from zerogate.core.http.framing import BodyFraming
from zerogate.core.http.overrides import ANY, BodyScan, body_scan, method_overrides
from zerogate.core.memo import Memo
from zerogate.core.policy.compile import CompiledPolicy, compile_policy
from zerogate.core.policy.event_line import EventLines, Part, facts
from zerogate.core.policy.model import (
    App,
    Decision,
    Effect,
    IPAddress,
    PrincipalKind,
    ReasonCode,
    RequestContext,
)
from zerogate.core.policy.parse import HTTP_METHODS
from zerogate.core.policy.snapshot import HttpRoute, Snapshot, TcpRoute
from zerogate.core.tokens import AccessClaims, TokenError, TokenVerifier
from zerogate.core.tunnel.allowlist import split_target
from zerogate.gateway.http import Forward, Outcome, Reply, Request, status_page
from zerogate.gateway.upstream import Upstream

log = logging.getLogger("zerogate.gateway")
COOKIE = "__Host-zerogate"
STATE_COOKIE = "__Host-zerogate-state"  # binds a sign-in round trip to the browser
CALLBACK = "/.zerogate/callback"
# An app's "Sign out" link (Pomerium's /.pomerium/sign_out, Cloudflare's /cdn-cgi/access/logout)
SIGN_OUT = "/.zerogate/sign_out"
HSTS = (b"strict-transport-security", b"max-age=31536000")
# Verified tokens, by the memory they hold: a token and its claims take 2 (200 groups) to 3
# (2 groups) times its length, their group names shared (`tokens._texts`). Counted in
# entries (100,000), anybody who mints tokens at will (/portal/token) could make a worker
# hold gigabytes of them.
_TOKEN_CACHE_BYTES = 64 << 20
_TOKEN_BYTES = 3  # per character of the token: the token, its claims, the entry
_ADDRESS_CACHE_LIMIT = 100_000
_COOKIE_BYTES = 4 << 20  # Cookie headers remembered, by size
_GROUP_SETS_BYTES = 16 << 20  # the sets of groups contexts hold, by size (see `_group_set`)
_GROUP_BYTES = 64  # per group in a set: its slots in the set's table and in the key's tuple
_ASSERTION_BYTES = 16 << 20  # identity headers kept: each holds its token twice (key, value)
# Remembered decisions, by the memory they hold: each keeps its key (the token is shared),
# a context and a line part, about 1.8 kB besides its path, which it holds twice (in the
# context and, JSON-escaped, in the part). Counted in entries, 20,000 decisions for 8 kB
# paths held 350 MB per worker, for any signed-in person who asked for them.
_DECISION_CACHE_BYTES = 40 << 20
_DECISION_BYTES = 2048
_DecisionKey = tuple[str, str, str, str, str]  # token, app, method, path, client address
_PLAIN_POSTS_BYTES = 8 << 20
_DECISION_KEY_BYTES = 256  # a key's tuple and entry; its token is the remembered decision's
_NOT_FOUND = Reply(404, status_page(404, "There is nothing here.").body, (HSTS,))
_PROXY_AUTH = Reply(
    407,
    status_page(407, "Sign in first: send your access token as a bearer token.").body,
    ((b"proxy-authenticate", b'Bearer realm="zerogate"'),),
)

# What a person can do about a failed condition; never rule names or internal details.
_HINTS = {
    ReasonCode.NO_DEVICE: "Open this application from a device enrolled with zerogate.",
    ReasonCode.DEVICE_NOT_ENROLLED: "Enroll this device with the zerogate agent.",
    ReasonCode.DEVICE_NOT_APPROVED: "Ask your administrator to approve this device.",
    ReasonCode.OS_FAMILY: "This application is not available on this operating system.",
    ReasonCode.OS_VERSION: "Update your operating system.",
    ReasonCode.DISK_NOT_ENCRYPTED: "Turn on disk encryption (FileVault, BitLocker or LUKS).",
    ReasonCode.FIREWALL_OFF: "Turn your firewall on.",
    ReasonCode.SCREEN_LOCK_OFF: "Turn on your screen lock.",
    ReasonCode.PROCESS_MISSING: "Start the required security software.",
    ReasonCode.AGENT_OUTDATED: "Update the zerogate agent.",
    ReasonCode.POSTURE_MISSING: "Start the zerogate agent so it can report this device.",
    ReasonCode.POSTURE_STALE: "Start the zerogate agent so it can report this device.",
    ReasonCode.LOGIN_STALE: "Sign in again.",
    ReasonCode.IDP_NOT_ALLOWED: "Sign in with your company's identity provider.",
    ReasonCode.SOURCE_NOT_ALLOWED: "Connect from an allowed network.",
    ReasonCode.SOURCE_BLOCKED: "Connect from another network.",
    ReasonCode.OUTSIDE_HOURS: "This application is available only during set hours.",
    ReasonCode.RISK_TOO_HIGH: "Your sign-in looks unusual; contact your administrator.",
}


@dataclass(frozen=True, slots=True)
class Target:
    route: HttpRoute | TcpRoute
    app: App
    upstream: Upstream
    path_prefix: str


@dataclass(frozen=True, slots=True)
class State:
    """Everything one snapshot decides with; replaced whole, never changed in place."""

    snapshot: Snapshot
    compiled: CompiledPolicy
    targets: Mapping[str, Target]  # by lower-case hostname
    verifier: TokenVerifier
    tcp_targets: Mapping[str, Target] = field(default_factory=dict)  # CONNECT, by hostname
    # Every target by its app's name: long-lived connections are rechecked by app, often.
    by_app: Mapping[str, Target] = field(default_factory=dict)


def build_state(
    snapshot: Snapshot, jwks: Mapping[str, object], upstream_tls: ssl.SSLContext | None = None
) -> State:
    apps = {app.name: app for app in snapshot.apps}
    targets = {}
    for route in snapshot.routes:
        app = apps.get(route.app)
        if app is None:
            continue
        upstream, prefix = _upstream(route, upstream_tls)
        targets[route.hostname] = Target(route, app, upstream, prefix)
    tcp_targets = {}
    for tcp in snapshot.tcp_routes:
        app = apps.get(tcp.app)
        if app is not None:
            host, port = split_target(tcp.target)
            upstream = Upstream(host, port, via=tcp.via, app=tcp.app)
            tcp_targets[tcp.hostname] = Target(tcp, app, upstream, "")
    return State(
        snapshot,
        compile_policy(snapshot.policy, snapshot.apps),
        targets,
        TokenVerifier(jwks, issuer=snapshot.issuer),
        tcp_targets,
        {t.app.name: t for t in (*targets.values(), *tcp_targets.values())},
    )


def _upstream(route: HttpRoute, tls: ssl.SSLContext | None) -> tuple[Upstream, str]:
    parts = urlsplit(route.target)
    secure = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    context = (tls or ssl.create_default_context()) if secure else None
    upstream = Upstream(host, port, context, host if secure else None, route.via, route.app)
    return upstream, parts.path.rstrip("/")


class Enforcer:
    def __init__(
        self,
        state: State,
        *,
        portal: str,
        gateway: str,
        audit: Callable[[bytes], None],  # takes each decision's event as a JSON line
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.portal = portal.rstrip("/")
        self.gateway = gateway
        self.audit = audit
        self._lines = EventLines(gateway)
        self.clock = clock
        self._tokens: Memo[str, tuple[AccessClaims, float]] = Memo(_TOKEN_CACHE_BYTES)
        # Event ids: 64 random bits for this process's life, then a counter. Unique across
        # gateways and restarts like a random id, without a getrandom call per request.
        self._event_prefix = os.urandom(8).hex()
        self._event_counter = itertools.count(1)
        # Parsed client addresses: `ipaddress` parses in Python, and clients come back.
        self._addresses: Memo[str, IPAddress] = Memo(_ADDRESS_CACHE_LIMIT)
        self._cookies: Memo[bytes, tuple[bool, str | None]] = Memo(_COOKIE_BYTES)
        # POSTs (by their remembered decision's key) whose `_method` could change nothing.
        self._plain_posts: Memo[_DecisionKey, bool] = Memo(_PLAIN_POSTS_BYTES)
        self._group_sets: Memo[tuple[str, ...], frozenset[str]] = Memo(_GROUP_SETS_BYTES)
        self._assertions: Memo[str, tuple[tuple[bytes, bytes], ...]] = Memo(_ASSERTION_BYTES)
        # Timeless decisions, with the request context they were made for (its clock aside)
        # and the part of their audit line that does not change (`EventLines.part`).
        self._decisions: Memo[_DecisionKey, tuple[RequestContext, Decision, Part]] = Memo(
            _DECISION_CACHE_BYTES
        )

    def swap(self, state: State) -> None:
        """Take a new snapshot: one assignment, so a request sees the old or the new, whole."""
        self.state = state
        self._tokens.clear()  # a new JWKS may have dropped a key
        self._decisions.clear()  # decided under the old policy
        self._plain_posts.clear()

    def handle(self, request: Request) -> Forward | Reply:
        state = self.state
        head = request.head
        if head.method == "CONNECT":
            return self._tunnel(request)
        target = state.targets.get(head.host)
        if target is None:
            return _NOT_FOUND
        if request.path == CALLBACK:
            return self._callback(request, target)
        if request.path == SIGN_OUT:
            return self._sign_out()
        token = self._token(head.headers)
        clock = self.clock()  # one reading for the token's expiry and the decision
        claims = self._verify(state, token, target.app.name, clock) if token else None
        if token is None or claims is None or _revoked(state.snapshot, claims):
            return self._to_login(request, target)
        now = datetime.fromtimestamp(clock, UTC)
        # Everything the request context is built from but the clock (the claims come from
        # the token): a remembered context differs from a new one only in `now`.
        key = (token, target.app.name, head.method, request.path, request.client)
        overrides = method_overrides(head.headers, head.query) if head.method == "POST" else ()
        remembered = None if overrides else self._decisions.get(key)
        version = state.snapshot.policy_version
        if remembered is not None:
            ctx, decision, part = remembered
            timeless = True
        else:
            ctx = self._context(claims, target, now, request, head.method, request.path)
            decision, timeless = state.compiled.decide_once(ctx)
            if overrides:  # the app may run it as one of these: the strictest answer stands
                ctx, decision = _strictest(state.compiled, ctx, decision, overrides)
            part = self._lines.part(ctx, decision, policy_version=version)
            timeless = timeless and not overrides
            if timeless:
                # The part's text grows with the groups (200 of them: 2.7 kB).
                size = _DECISION_BYTES + 2 * len(request.path) + len(part[0])
                self._decisions.put(key, (ctx, decision, part), size)
        done = self._recorder(ctx, decision, version, request, now, part)
        if decision.effect is Effect.ALLOW:
            recheck = self._recheck(token, ctx) if head.upgrade is not None else None
            check = None
            if head.method == "POST" and head.framing is not BodyFraming.NONE:
                remember = key if timeless else None
                check = self._body_check(ctx, decision, version, request, target, now, remember)
            return Forward(
                target.upstream,
                headers=self._assertion(token),
                response_headers=(HSTS,),
                done=done,
                path_prefix=target.path_prefix,
                still_allowed=recheck,
                body_check=check,
            )
        if decision.effect is Effect.STEP_UP:
            return self._step_up(request, target, done)
        return _denied(decision, done)

    def _body_check(
        self,
        ctx: RequestContext,
        decision: Decision,
        version: int,
        request: Request,
        target: Target,
        now: datetime,
        key: _DecisionKey | None,
    ) -> _BodyCheck | None:
        """A reader of this allowed POST's body for a `_method` that its app would run it as,
        when the policy treats some method more strictly than this one: that method's
        answer replaces the app's, and its decision is the event's.

        Whether any method is stricter takes ten decisions. For a POST whose own decision is
        remembered (`key`) and that none of the ten read the clock for, a "none" is
        remembered too, until the next snapshot."""
        scan = body_scan(request.head.headers)
        if scan is None or (key is not None and key in self._plain_posts):
            return None
        compiled = self.state.compiled
        ctx = replace(ctx, now=now)  # a remembered context holds its first request's time
        nothing, always = _nothing_stricter(compiled, ctx, decision)
        if nothing:
            if key is not None and always:
                self._plain_posts.put(key, True, _DECISION_KEY_BYTES + 2 * len(key[3]))
            return None  # no method is refused where this one is allowed: nothing to read

        def answer(found: list[str]) -> Reply | None:
            methods = frozenset(found)
            if ANY in methods:
                methods = (methods - {ANY}) | _EVERY_METHOD
            other, refused = _strictest(compiled, ctx, decision, sorted(methods - {"POST"}))
            if refused is decision:
                return None
            part = self._lines.part(other, refused, policy_version=version)
            done = self._recorder(other, refused, version, request, now, part)
            if refused.effect is Effect.STEP_UP:
                return self._step_up(request, target, done)
            return _denied(refused, done)

        return _BodyCheck(scan, answer)

    def _tunnel(self, request: Request) -> Forward | Reply:
        """CONNECT to a TCP app's hostname: the same decision as a web request, made once for
        the connection and asked again whenever the policy changes (`still_allowed`)."""
        state = self.state
        head = request.head
        target = state.tcp_targets.get(head.host)
        if target is None:
            return _NOT_FOUND
        token = _bearer(head.headers)
        clock = self.clock()
        claims = self._verify(state, token, target.app.name, clock) if token else None
        if token is None or claims is None or _revoked(state.snapshot, claims):
            return _PROXY_AUTH
        now = datetime.fromtimestamp(clock, UTC)
        ctx = self._context(claims, target, now, request, "CONNECT", "/")
        version = state.snapshot.policy_version
        decision = state.compiled.decide(ctx)
        part = self._lines.part(ctx, decision, policy_version=version)
        done = self._recorder(ctx, decision, version, request, now, part)
        if decision.effect is Effect.ALLOW:
            upstream = replace(target.upstream, principal=claims.username)
            return Forward(upstream, done=done, still_allowed=self._recheck(token, ctx))
        return _denied(decision, done)

    def _context(
        self,
        claims: AccessClaims,
        target: Target,
        now: datetime,
        request: Request,
        method: str,
        path: str,
    ) -> RequestContext:
        return RequestContext(
            user=claims.username,
            app=target.app,
            now=now,
            source_ip=self._address(request.client),
            groups=self._group_set(claims.groups),
            department=claims.department,
            office=claims.office,
            principal=PrincipalKind.SERVICE
            if claims.principal_kind == "service"
            else PrincipalKind.USER,
            method=method,
            path=path,
            mfa_time=claims.mfa_time,
            auth_time=claims.auth_time,
            identity_provider=claims.identity_provider,
        )

    def _group_set(self, groups: tuple[str, ...]) -> frozenset[str]:
        """The groups of a token as the set a context holds, one set for every context with
        these groups: 200 groups make an 8 kB set, which each remembered decision kept its
        own copy of."""
        found = self._group_sets.get(groups)
        if found is None:
            found = self._group_sets.put(groups, frozenset(groups), _GROUP_BYTES * len(groups))
        return found

    def _token(self, headers: tuple[tuple[bytes, bytes], ...]) -> str | None:
        """The session cookie from the first Cookie header that names it. What each header
        holds is remembered by its bytes, so the same token text (and its hash, which the
        caches use) serves request after request."""
        for header, value in headers:
            if header == b"cookie":
                found = self._cookies.get(value)
                if found is None:
                    found = self._cookies.put(value, _cookie_in(value, COOKIE), 2 * len(value))
                if found[0]:
                    return found[1]
        return None

    def _assertion(self, token: str) -> tuple[tuple[bytes, bytes], ...]:
        """The identity header for the upstream: the token itself, for exactly this app. Kept
        per token, so a repeated request forwards the same header (see `upstream_request`)."""
        headers = self._assertions.get(token)
        if headers is None:
            value = ((b"x-zerogate-assertion", token.encode()),)
            headers = self._assertions.put(token, value, 2 * len(token))
        return headers

    def _address(self, client: str) -> IPAddress:
        address = self._addresses.get(client)
        if address is None:
            parsed = ipaddress.ip_address(client or "0.0.0.0")  # noqa: S104
            address = self._addresses.put(client, parsed)
        return address

    def _recheck(self, token: str, ctx: RequestContext) -> Callable[[], bool]:
        """Whether a long-lived connection's grant still holds under the state now in force
        and at the time now: its app still exists, its token still verifies (as of the
        upgrade: a WebSocket outlives its ten-minute token, as in the peers), its session has
        not reached its end (`zg_sexp`) and neither it, its person nor a removal is revoked,
        and the policy still allows it now."""
        decided_at = ctx.now.timestamp()

        def still_allowed() -> bool:
            state = self.state
            target = state.by_app.get(ctx.app.name)
            if target is None:
                return False  # the app is gone from the snapshot
            claims = self._verify(state, token, target.app.name, decided_at)
            if claims is None or _revoked(state.snapshot, claims):
                return False
            now = datetime.fromtimestamp(self.clock(), UTC)
            if claims.session_expires_at is not None and now >= claims.session_expires_at:
                return False
            again = replace(ctx, app=target.app, now=now)
            return state.compiled.decide(again).effect is Effect.ALLOW

        return still_allowed

    # --- tokens and the login round trip ----------------------------------------------------

    def _verify(
        self, state: State, token: str, audience: str, now: float | None = None
    ) -> AccessClaims | None:
        if now is None:
            now = self.clock()
        cached = self._tokens.get(token)
        if cached is not None:
            claims, expires = cached
            return claims if now < expires and claims.audience == audience else None
        try:
            claims = state.verifier.verify(
                token, audience=audience, now=datetime.fromtimestamp(now, UTC)
            )
        except TokenError:
            return None
        self._tokens.put(token, (claims, claims.expires_at.timestamp()), _TOKEN_BYTES * len(token))
        return claims

    def _return_url(self, request: Request) -> str:
        head = request.head
        port = f":{head.port}" if head.port and head.port != 443 else ""
        query = f"?{head.query}" if head.query else ""
        return f"https://{head.host}{port}{request.path}{query}"

    def _to_login(self, request: Request, target: Target) -> Reply:
        head = request.head
        if head.method not in ("GET", "HEAD") or not _navigation(head.headers):
            # Only a page the person opens can take the sign-in round trip; a script's fetch
            # cannot follow it (it would also replace the state of a sign-in under way).
            return Reply(401, status_page(401, "Sign in first.").body, (HSTS,))
        authorize, state_cookie = self._authorize(request, target)
        location = f"{self.portal}{authorize}".encode()
        return Reply(302, b"", (HSTS, (b"location", location), state_cookie, _NO_STORE))

    def _authorize(self, request: Request, target: Target) -> tuple[str, tuple[bytes, bytes]]:
        """The portal's path that sends this browser back with a token for this app, and the
        cookie that binds that round trip to this browser: the callback takes a token only
        with the `state` this cookie holds, so nobody can plant their own sign-in in someone
        else's browser (login CSRF, RFC 6749 §10.12)."""
        state = secrets.token_urlsafe(16)
        query = urlencode(
            {"app": target.app.name, "return": self._return_url(request), "state": state}
        )
        return f"/portal/authorize?{query}", _set_cookie(STATE_COOKIE, state, 600)

    def _callback(self, request: Request, target: Target) -> Reply:
        params = dict(parse_qsl(request.head.query, max_num_fields=4))
        token, back = params.get("token", ""), params.get("return", "/")
        back = _local_target(back)
        expected = _cookie(request.head.headers, STATE_COOKIE)
        state = params.get("state", "")
        if not expected or not hmac.compare_digest(state.encode(), expected.encode()):
            # Not a round trip this browser started: take no token from it. Going back to
            # the page starts one of its own if it needs it.
            log.warning(
                "sign-in callback for %s without its state cookie: ignored", target.app.name
            )
            return Reply(303, b"", (HSTS, (b"location", back.encode()), _NO_STORE))
        claims = self._verify(self.state, token, target.app.name) if token else None
        if claims is None or _revoked(self.state.snapshot, claims):
            return Reply(401, status_page(401, "That sign-in link is not valid.").body, (HSTS,))
        max_age = max(0, int(claims.expires_at.timestamp() - self.clock()))
        headers = (
            HSTS,
            (b"location", back.encode()),
            _set_cookie(COOKIE, token, max_age),
            _STATE_SPENT,
            (b"referrer-policy", b"no-referrer"),
            _NO_STORE,
        )
        return Reply(303, b"", headers)

    def _sign_out(self) -> Reply:
        """Forget this app's token in this browser and go to the portal, which ends the
        session (every app's token with it) once the person confirms."""
        headers = (
            HSTS,
            (b"location", f"{self.portal}/portal/logout".encode()),
            _TOKEN_SPENT,
            _STATE_SPENT,
            _NO_STORE,
        )
        return Reply(303, b"", headers)

    def _step_up(self, request: Request, target: Target, done: Callable[[Outcome], None]) -> Reply:
        authorize, state_cookie = self._authorize(request, target)
        again = f"{self.portal}/portal/login?" + urlencode({"next": authorize})
        body = (
            "<!doctype html><title>Confirm it is you</title>"
            "<h1>Confirm it is you</h1><p>This application needs a recent second factor.</p>"
            f'<p><a href="{html.escape(again)}">Sign in again</a></p>\n'
        ).encode()
        return Reply(401, body, (HSTS, state_cookie), done=done)

    # --- audit ----------------------------------------------------------------------------

    def _recorder(
        self,
        ctx: RequestContext,
        decision: Decision,
        version: int,
        request: Request,
        now: datetime,  # the request's time (a remembered `ctx` holds an earlier one)
        part: Part,  # EventLines.part of ctx, decision and version
    ) -> Callable[[Outcome], None]:
        def done(outcome: Outcome) -> None:
            details = facts(
                request.head.host,
                outcome.status,
                outcome.bytes_in,
                outcome.bytes_out,
                round(outcome.seconds * 1000, 3),
                outcome.error,
            )
            line = self._lines.line(
                ctx,
                decision,
                now=now,
                part=part,
                policy_version=version,
                event_id=f"{self._event_prefix}{next(self._event_counter):016x}",
                request=details,
            )
            self.audit(line)

        return done


_NO_STORE = (b"cache-control", b"no-store")


def _set_cookie(name: str, value: str, max_age: int) -> tuple[bytes, bytes]:
    """A Set-Cookie header for one of the gateway's cookies: host-only (`__Host-`), never
    sent over plain HTTP or read by scripts, and not sent on cross-site subrequests."""
    cookie = f"{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    return b"set-cookie", cookie.encode()


_TOKEN_SPENT = _set_cookie(COOKIE, "", 0)
_STATE_SPENT = _set_cookie(STATE_COOKIE, "", 0)


def _denied(decision: Decision, done: Callable[[Outcome], None]) -> Reply:
    """A person this app is meant for learns what to fix; anyone else sees the 404 page."""
    hints = []
    for reason in decision.reasons:
        hint = _HINTS.get(reason.code)
        if hint is not None and hint not in hints:
            hints.append(hint)
    if not hints:
        return Reply(_NOT_FOUND.status, _NOT_FOUND.body, _NOT_FOUND.headers, done=done)
    items = "".join(f"<li>{html.escape(hint)}</li>" for hint in hints)
    body = (
        "<!doctype html><title>Access denied</title><h1>Access denied</h1>"
        f"<p>You cannot open this application right now. To fix it:</p><ul>{items}</ul>\n"
    ).encode()
    return Reply(403, body, (HSTS,), done=done)


def _bearer(headers: tuple[tuple[bytes, bytes], ...]) -> str | None:
    """A CONNECT's token: `Proxy-Authorization: Bearer …` (RFC 9110 §11.7.2) or, for
    clients that cannot set that, `Authorization: Bearer …`."""
    for wanted in (b"proxy-authorization", b"authorization"):
        for header, value in headers:
            if header == wanted and value[:7].lower() == b"bearer ":
                return value[7:].strip().decode("ascii", "replace")
    return None


# Where frameworks let a POST stand for another method: `core.http.overrides`. Only POST is
# ever overridden, so only POST is looked at.
_STRICTNESS = {Effect.ALLOW: 0, Effect.STEP_UP: 1, Effect.DENY: 2}
# The methods a `_method` may name: those a rule can name, and one that none can (a rule
# that lists methods holds for none outside the list: every such method is decided alike).
_EVERY_METHOD = HTTP_METHODS | {"PURGE"}
_OTHER_METHODS = sorted(_EVERY_METHOD - {"POST"})


def _nothing_stricter(
    compiled: CompiledPolicy, ctx: RequestContext, decision: Decision
) -> tuple[bool, bool]:
    """Whether no other method is answered more strictly than `decision` for `ctx`, and
    whether that holds at any time (no decision that took part read the clock)."""
    always = True
    for method in _OTHER_METHODS:
        answer, timeless = compiled.decide_once(replace(ctx, method=method))
        if _STRICTNESS[answer.effect] > _STRICTNESS[decision.effect]:
            return False, False
        always = always and timeless
    return True, always


def _strictest(
    compiled: CompiledPolicy, ctx: RequestContext, decision: Decision, methods: Iterable[str]
) -> tuple[RequestContext, Decision]:
    """`ctx` decided as each of `methods` too: the first strictest answer, with its context
    (`ctx` and `decision` themselves if none is stricter)."""
    for method in methods:
        other = replace(ctx, method=method)
        answer = compiled.decide(other)
        if _STRICTNESS[answer.effect] > _STRICTNESS[decision.effect]:
            ctx, decision = other, answer
    return ctx, decision


class _BodyCheck:
    """`http.BodyCheck`: a body's `_method`s (`core.http.overrides`) and the answer to them."""

    def __init__(self, scan: BodyScan, answer: Callable[[list[str]], Reply | None]) -> None:
        self.scan = scan
        self.answer = answer

    def feed(self, chunk: bytes) -> Reply | None:
        found = self.scan.feed(chunk)
        return self.answer(found) if found else None

    def finish(self) -> Reply | None:
        found = self.scan.finish()
        return self.answer(found) if found else None


# What a path and query may hold as they are (RFC 3986 §3.3, §3.4): everything else is
# percent-encoded, above all the controls and spaces a browser drops from a URL ("/\t/evil"
# would become "//evil") and the line breaks that would end the Location header.
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:-._~%"


def _local_target(back: str) -> str:
    """Where the callback may send the browser back to: a path on this host, nowhere else."""
    target = quote(back, safe=_TARGET_SAFE)
    if not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _revoked(snapshot: Snapshot, claims: AccessClaims) -> bool:
    if claims.session_id in snapshot.revoked_sessions or claims.username in snapshot.disabled_users:
        return True
    removed = snapshot.users_removed_at.get(claims.username)
    return removed is not None and claims.issued_at <= removed


def _navigation(headers: tuple[tuple[bytes, bytes], ...]) -> bool:
    """Whether a browser opens this as a page (Fetch Metadata: `Sec-Fetch-Mode: navigate`).
    A client that sends no fetch metadata (curl, an older browser) counts as one."""
    for header, value in headers:
        if header == b"sec-fetch-mode":
            return value == b"navigate"
    return True


def _cookie(headers: tuple[tuple[bytes, bytes], ...], name: str) -> str | None:
    """The value of the first cookie called `name`, if it is ASCII."""
    for header, value in headers:
        if header == b"cookie":
            found, text = _cookie_in(value, name)
            if found:
                return text
    return None


def _cookie_in(value: bytes, name: str) -> tuple[bool, str | None]:
    """(whether this Cookie header names the cookie, its value if that is ASCII)."""
    wanted = name.encode() + b"="
    for part in value.split(b";"):
        part = part.strip()
        if part.startswith(wanted):
            try:
                return True, part[len(wanted) :].decode("ascii")
            except UnicodeDecodeError:
                return True, None
    return False, None
