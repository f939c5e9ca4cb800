"""Enforcement in the gateway, with a snapshot and tokens signed in the test, against a real
upstream: the login round trip, tokens for other apps or expired, the deny page and its
hints, step-up, and one audit event per decision."""

from __future__ import annotations

import asyncio
import gzip
import html
import os
import re
import socket
import subprocess
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as websocket_connect

from gatewaykit import GatewayThread, raw, split_responses, status_of
from netkit import free_port
from zerogate.core.audit import AuditRecord
from zerogate.core.http.framing import BodyFraming, RequestHead
from zerogate.core.policy.model import App
from zerogate.core.policy.parse import parse_policy
from zerogate.core.policy.snapshot import HttpRoute, Snapshot
from zerogate.core.token_keys import jwks, new_signing_key
from zerogate.core.tokens import AccessClaims, issue_access_token, new_token_id
from zerogate.gateway.enforce import COOKIE, STATE_COOKIE, Enforcer, build_state
from zerogate.gateway.http import Forward, Request
from zerogate.gateway.run import Guard, recheck_long_lived
from zerogate.gateway.spool import decode_line

ISSUER = "https://control.test:8443"
KEY = new_signing_key(datetime.now(UTC))
POLICY = """\
rules:
  - name: eng-wiki
    who: {groups: [eng]}
    what: {apps: [wiki]}
  - name: eng-grafana-managed
    who: {groups: [eng]}
    what: {apps: [grafana]}
    when: {device: {enrolled: true}}
  - name: ops-vault-mfa
    who: {groups: [ops]}
    what: {apps: [vault]}
    when: {auth: {mfa_max_age_minutes: 10}}
  - name: eng-docs
    who: {groups: [eng]}
    what: {apps: [docs]}
  - name: docs-admin-closed
    who: everyone
    what: {apps: [docs], paths: [/admin]}
    effect: deny
  - name: contractors-docs-public
    who: {groups: [contractors]}
    what: {apps: [docs], paths: [/public]}
  - name: finance-ledger
    who: {departments: [finance]}
    what: {apps: [ledger]}
  - name: ledger-not-from-the-lab
    who: {offices: [lab]}
    what: {apps: [ledger]}
    effect: deny
  - name: eng-wiki-edit-via-sso
    who: {groups: [eng]}
    what: {apps: [wiki-admin]}
    when: {auth: {identity_providers: [okta]}}
  - name: eng-tickets
    who: {groups: [eng]}
    what: {apps: [tickets]}
  - name: tickets-never-deleted
    who: everyone
    what: {apps: [tickets], methods: [DELETE]}
    effect: deny
"""


class Harness:
    def __init__(self, upstream: int) -> None:
        apps = (
            App("wiki"),
            App("grafana"),
            App("vault"),
            App("docs"),
            App("ledger"),
            App("wiki-admin"),
            App("tickets"),
        )
        routes = tuple(
            HttpRoute(a.name, f"{a.name}.apps.test", f"http://127.0.0.1:{upstream}") for a in apps
        )
        policy = parse_policy(POLICY)
        snapshot = Snapshot(
            ISSUER, 1, 1, datetime.now(UTC), policy, apps, routes,
            revoked_sessions=frozenset({"ended"}), disabled_users=frozenset({"mallory"}),
            users_removed_at={"gone": datetime.now(UTC)},
        )  # fmt: skip
        self.events: list[AuditRecord] = []
        self.snapshot = snapshot
        self.clock_offset = 0.0  # seconds the gateway's clock runs ahead of the real one
        self.enforcer = Enforcer(
            build_state(snapshot, jwks([KEY])),
            portal=ISSUER,
            gateway="gw-test",
            audit=self.record,
            clock=lambda: time.time() + self.clock_offset,
        )

    def record(self, line: bytes) -> None:
        record = decode_line(line)
        assert record is not None, line
        self.events.append(record)


@pytest.fixture
def harness(upstream: int) -> Iterator[tuple[Harness, GatewayThread]]:
    harness = Harness(upstream)
    with GatewayThread(harness.enforcer.handle, free_port()) as gateway:
        yield harness, gateway


def token(
    app: str, *, user: str = "alice", groups: tuple[str, ...] = ("eng",), **kw: object
) -> str:
    now = datetime.now(UTC)
    claims = AccessClaims(
        issuer=ISSUER,
        subject=f"user:{user}",
        audience=app,
        session_id=str(kw.get("session", "s1")),
        principal_kind="person",
        username=user,
        groups=groups,
        auth_time=now,
        mfa_time=kw.get("mfa_time"),  # type: ignore[arg-type]
        amr=("pwd",),
        issued_at=kw.get("issued_at", now),  # type: ignore[arg-type]
        expires_at=kw.get("expires_at", now + timedelta(minutes=10)),  # type: ignore[arg-type]
        token_id=new_token_id(),
        cnf_x5t_s256=None,
        department=kw.get("department"),  # type: ignore[arg-type]
        office=kw.get("office"),  # type: ignore[arg-type]
        identity_provider=kw.get("idp"),  # type: ignore[arg-type]
        session_expires_at=kw.get("session_ends"),  # type: ignore[arg-type]
    )
    return issue_access_token(KEY, claims)


def get(
    gateway: GatewayThread,
    host: str,
    path: str = "/",
    cookie: str | None = None,
    method: str = "GET",
    state: str | None = None,
) -> httpx.Response:
    headers = {"host": host}
    cookies = [] if cookie is None else [f"{COOKIE}={cookie}"]
    if state is not None:
        cookies.append(f"{STATE_COOKIE}={state}")
    if cookies:
        headers["cookie"] = "; ".join(cookies)
    return httpx.request(method, f"http://127.0.0.1:{gateway.port}{path}", headers=headers)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each cookie the answer sets, by name: its whole Set-Cookie value."""
    return {v.split("=", 1)[0]: v for v in response.headers.get_list("set-cookie")}


def test_no_token_goes_to_the_portal_for_this_app(harness: tuple[Harness, GatewayThread]) -> None:
    _, gateway = harness
    response = get(gateway, "wiki.apps.test", "/page?x=1")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{ISSUER}/portal/authorize"
    query = parse_qs(location.query)
    assert query["app"] == ["wiki"] and query["return"] == ["https://wiki.apps.test/page?x=1"]
    # The round trip is bound to this browser: the state goes out in the URL and in a cookie.
    (state,) = query["state"]
    assert len(state) >= 22
    bound = set_cookies(response)[STATE_COOKIE]
    assert bound.startswith(f"{STATE_COOKIE}={state};")
    assert all(flag in bound for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"))
    again = parse_qs(urlsplit(get(gateway, "wiki.apps.test", "/").headers["location"]).query)
    assert again["state"] != [state]
    assert get(gateway, "wiki.apps.test", "/", method="POST").status_code == 401
    # A script's fetch cannot take the round trip: 401, and no state of its own.
    url = f"http://127.0.0.1:{gateway.port}/api/items"
    for mode, status in (("cors", 401), ("no-cors", 401), ("navigate", 302)):
        fetched = httpx.get(url, headers={"host": "wiki.apps.test", "sec-fetch-mode": mode})
        assert fetched.status_code == status
        assert (STATE_COOKIE in set_cookies(fetched)) is (status == 302)


def test_the_callback_sets_the_cookie_and_returns_only_to_a_local_path(
    harness: tuple[Harness, GatewayThread],
) -> None:
    _, gateway = harness
    good = token("wiki")
    for back, expected in (
        ("/page?x=1", "/page?x=1"),
        ("//evil.test/x", "/"),
        ("https://evil.test", "/"),
        ("\\evil.test", "/"),
        # Browsers drop tabs and line breaks from a URL: "/\t/evil.test" would be "//evil.test".
        ("/\t/evil.test/x", "/%09/evil.test/x"),
        ("/\n/evil.test", "/%0A/evil.test"),
        ("/\\evil.test", "/%5Cevil.test"),
        # A line break must not end the Location header and start one of the client's.
        ("/x\r\nSet-Cookie: planted=1", "/x%0D%0ASet-Cookie:%20planted=1"),
        ("/caf\u00e9?q=a b", "/caf%C3%A9?q=a%20b"),
    ):
        response = get(
            gateway,
            "wiki.apps.test",
            f"/.zerogate/callback?token={good}&return={quote(back)}&state=S1",
            state="S1",
        )
        assert response.status_code == 303 and response.headers["location"] == expected
        cookies = set_cookies(response)
        assert set(cookies) == {COOKIE, STATE_COOKIE}  # and nothing a client planted
        assert cookies[COOKIE].startswith(f"{COOKIE}={good};")
        assert all(
            flag in cookies[COOKIE] for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/")
        )
        assert "Max-Age=0" in cookies[STATE_COOKIE]  # the state is spent
    other = get(
        gateway,
        "wiki.apps.test",
        f"/.zerogate/callback?token={token('grafana')}&state=S",
        state="S",
    )
    assert other.status_code == 401  # a token for another app is no key to this one


@pytest.mark.parametrize(
    ("query_state", "cookie_state"),
    [(None, None), ("S1", None), (None, "S1"), ("S1", "S2"), ("", "")],
)
def test_a_sign_in_this_browser_did_not_start_is_not_taken(
    harness: tuple[Harness, GatewayThread], query_state: str | None, cookie_state: str | None
) -> None:
    """Login CSRF: someone sends a victim to the callback with their own valid token. Without
    the state this browser was given, the gateway sets no cookie and sends the browser back
    to the page, where its own sign-in starts."""
    _, gateway = harness
    link = f"/.zerogate/callback?token={token('wiki', user='mallory')}&return=/page"
    if query_state is not None:
        link += f"&state={query_state}"
    response = get(gateway, "wiki.apps.test", link, state=cookie_state)
    assert response.status_code == 303 and response.headers["location"] == "/page"
    assert COOKIE not in set_cookies(response)


def test_an_app_s_sign_out_link_forgets_its_token_and_leads_to_the_portal(
    harness: tuple[Harness, GatewayThread],
) -> None:
    h, gateway = harness
    for cookie in (token("wiki"), None):  # signed in or not, the link does the same
        for method in ("GET", "POST"):
            response = get(gateway, "wiki.apps.test", "/.zerogate/sign_out", cookie, method)
            assert response.status_code == 303
            assert response.headers["location"] == f"{ISSUER}/portal/logout"
            cookies = set_cookies(response)
            assert set(cookies) == {COOKIE, STATE_COOKIE}
            assert all("Max-Age=0" in value for value in cookies.values())
            assert response.headers["cache-control"] == "no-store"
    assert h.events == []  # nothing reached the app, so there is no decision to audit
    # Any other path is the app's: without a token, that is a sign-in.
    assert get(gateway, "wiki.apps.test", "/.zerogate/sign_out/").status_code == 302
    assert get(gateway, "nothing.apps.test", "/.zerogate/sign_out").status_code == 404


def test_allowed_requests_carry_the_assertion_and_are_audited(
    harness: tuple[Harness, GatewayThread],
) -> None:
    h, gateway = harness
    wiki = token("wiki")
    response = get(gateway, "wiki.apps.test", "/echo", cookie=wiki)
    assert response.status_code == 200
    assert dict(response.json()["headers"])["x-zerogate-assertion"] == wiki
    assert response.headers["strict-transport-security"].startswith("max-age=")
    (event,) = h.events
    assert (event.actor, event.target, event.details["effect"]) == (
        "user:alice",
        "app/wiki",
        "allow",
    )
    assert event.details["request"]["status"] == 200  # type: ignore[index]


@pytest.mark.parametrize(
    "bad",
    [
        token("grafana"),  # another app's
        token(
            "wiki",
            issued_at=datetime.now(UTC) - timedelta(hours=2),
            expires_at=datetime.now(UTC) - timedelta(hours=1),
        ),
        token("wiki")[:-4] + "AAAA",  # forged signature
        "not-a-token",
    ],
)
def test_bad_tokens_are_sent_to_sign_in(harness: tuple[Harness, GatewayThread], bad: str) -> None:
    h, gateway = harness
    assert get(gateway, "wiki.apps.test", "/echo", cookie=bad).status_code == 302
    assert h.events == []


def test_denials_look_like_nothing_unless_there_is_something_to_fix(
    harness: tuple[Harness, GatewayThread],
) -> None:
    h, gateway = harness
    unknown = get(gateway, "nothing.apps.test", "/")
    no_rule = get(gateway, "vault.apps.test", "/", cookie=token("vault"))  # alice is not ops
    assert unknown.status_code == no_rule.status_code == 404 and unknown.text == no_rule.text
    fixable = get(gateway, "grafana.apps.test", "/", cookie=token("grafana"))
    assert fixable.status_code == 403
    assert "device enrolled with zerogate" in fixable.text and "eng-grafana" not in fixable.text
    assert [e.details["effect"] for e in h.events] == ["deny", "deny"]


def test_a_stale_second_factor_asks_for_step_up(harness: tuple[Harness, GatewayThread]) -> None:
    _, gateway = harness
    stale = token(
        "vault", user="olga", groups=("ops",), mfa_time=datetime.now(UTC) - timedelta(hours=1)
    )
    response = get(gateway, "vault.apps.test", "/", cookie=stale)
    assert response.status_code == 401 and "Sign in again" in response.text
    link = re.search(r'href="([^"]+)"', response.text)
    assert link and link.group(1).startswith(f"{ISSUER}/portal/login?next=")
    # The way back after the fresh sign-in is bound to this browser like any other.
    (next_url,) = parse_qs(urlsplit(html.unescape(link.group(1))).query)["next"]
    (state,) = parse_qs(urlsplit(next_url).query)["state"]
    assert set_cookies(response)[STATE_COOKIE].startswith(f"{STATE_COOKIE}={state};")
    fresh = token("vault", user="olga", groups=("ops",), mfa_time=datetime.now(UTC))
    assert get(gateway, "vault.apps.test", "/echo", cookie=fresh).status_code == 200


def test_a_decision_that_reads_the_clock_is_made_again_every_time(
    harness: tuple[Harness, GatewayThread],
) -> None:
    """Decisions are remembered only when no condition in them reads the clock: an MFA that
    ages past its limit between two identical requests gets the second one a step-up."""
    h, gateway = harness
    mfa = datetime.now(UTC) - timedelta(minutes=9)  # the rule allows 10 minutes
    cookie = token("vault", user="olga", groups=("ops",), mfa_time=mfa)
    assert get(gateway, "vault.apps.test", "/echo", cookie=cookie).status_code == 200
    assert get(gateway, "vault.apps.test", "/echo", cookie=cookie).status_code == 200
    h.clock_offset = 120.0
    assert get(gateway, "vault.apps.test", "/echo", cookie=cookie).status_code == 401
    assert [e.details["effect"] for e in h.events] == ["allow", "allow", "step_up"]


def test_a_remembered_decision_gives_way_to_revocation_and_new_policy(
    harness: tuple[Harness, GatewayThread],
) -> None:
    h, gateway = harness
    cookie = token("wiki", session="s-kept")
    for offset in (0.0, 60.0):  # the second is answered from the remembered decision…
        h.clock_offset = offset
        assert get(gateway, "wiki.apps.test", "/echo", cookie=cookie).status_code == 200
    first, second = h.events  # …and audited with its own time, not the first one's
    assert (second.time - first.time).total_seconds() >= 60
    assert second.details["context"]["now"] > first.details["context"]["now"]  # type: ignore[index]
    revoked = replace(h.snapshot, serial=2, revoked_sessions=frozenset({"s-kept"}))
    h.enforcer.swap(build_state(revoked, jwks([KEY])))
    assert get(gateway, "wiki.apps.test", "/echo", cookie=cookie).status_code == 302
    without_wiki = parse_policy(POLICY.replace("what: {apps: [wiki]}", "what: {apps: [none]}"))
    h.enforcer.swap(build_state(replace(h.snapshot, serial=3, policy=without_wiki), jwks([KEY])))
    assert get(gateway, "wiki.apps.test", "/echo", cookie=cookie).status_code == 404


def test_revoked_sessions_and_disabled_people_are_sent_to_sign_in(
    harness: tuple[Harness, GatewayThread],
) -> None:
    h, gateway = harness
    assert get(gateway, "wiki.apps.test", "/echo", cookie=token("wiki")).status_code == 200
    ended = token("wiki", session="ended")
    assert get(gateway, "wiki.apps.test", "/echo", cookie=ended).status_code == 302
    mallory = token("wiki", user="mallory")
    assert get(gateway, "wiki.apps.test", "/echo", cookie=mallory).status_code == 302
    before_removal = token("wiki", user="gone", issued_at=datetime.now(UTC) - timedelta(minutes=1))
    assert get(gateway, "wiki.apps.test", "/echo", cookie=before_removal).status_code == 302
    new_gone = token("wiki", user="gone", issued_at=datetime.now(UTC) + timedelta(seconds=2))
    assert get(gateway, "wiki.apps.test", "/echo", cookie=new_gone).status_code == 200
    link = f"/.zerogate/callback?token={ended}&state=S"
    assert get(gateway, "wiki.apps.test", link, state="S").status_code == 401
    assert len(h.events) == 2


def test_a_websocket_is_cut_when_its_session_is_revoked(
    harness: tuple[Harness, GatewayThread],
) -> None:
    h, gateway = harness
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    cookie = {"cookie": f"{COOKIE}={token('wiki', session='live')}"}
    with websocket_connect(
        "ws://wiki.apps.test/ws", sock=sock, additional_headers=cookie, open_timeout=5
    ) as ws:
        ws.send("still here?")
        assert ws.recv(timeout=5) == "still here?"
        assert gateway.call(gateway.gateway.recheck_tunnels) == 0  # nothing changed yet
        state = h.enforcer.state
        ended = replace(state.snapshot, revoked_sessions=frozenset({"live"}))
        gateway.call(lambda: h.enforcer.swap(build_state(ended, jwks([KEY]))))
        assert gateway.call(gateway.gateway.recheck_tunnels) == 1
        with pytest.raises(ConnectionClosed):
            ws.send("and now?")
            ws.recv(timeout=5)


def raw_get(
    gateway: GatewayThread, host: str, target: str, cookie: str, method: str = "GET"
) -> int:
    """The status of one request sent byte for byte (an HTTP library might tidy the target)."""
    request = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nCookie: {COOKIE}={cookie}\r\n"
    return status_of(raw(gateway.port, request.encode() + b"Connection: close\r\n\r\n"))


@pytest.mark.parametrize(
    "target",
    [
        "/ADMIN/users",
        "/admin;jsessionid=0A1B",
        "/public/..;/admin",
        "/admin./users",
        "/%EF%BD%81dmin",
        "/%2561dmin",
    ],
)
def test_no_spelling_of_a_closed_path_reaches_the_app(
    harness: tuple[Harness, GatewayThread], upstream: int, target: str
) -> None:
    """A deny on /admin holds for every way an app might read a path as /admin (case,
    ;parameters, trailing dots, fullwidth letters, double encoding); a grant on /public covers
    no path that some app would read as outside it. The app never sees any of them."""
    h, gateway = harness
    eng = token("docs")
    contractor = token("docs", user="carol", groups=("contractors",))
    assert raw_get(gateway, "docs.apps.test", "/echo/open", eng) == 200
    assert raw_get(gateway, "docs.apps.test", "/public/a;v=2/b", contractor) == 200
    assert raw_get(gateway, "docs.apps.test", target, eng) == 404
    assert raw_get(gateway, "docs.apps.test", target, eng, "HEAD") == 404
    assert raw_get(gateway, "docs.apps.test", f"/public/..;{target}", contractor) == 404
    seen = httpx.get(f"http://127.0.0.1:{upstream}/seen").json()["seen"]
    assert "/echo/open" in seen and "/public/a;v=2/b" in seen
    assert not [path for path in seen if "dmin" in path.lower()]
    denied = [e for e in h.events if e.details["effect"] == "deny"]
    assert [e.details["rule"] for e in denied][:2] == ["docs-admin-closed"] * 2


def test_rules_that_name_departments_and_offices_are_enforced(
    harness: tuple[Harness, GatewayThread],
) -> None:
    """The department and office come from the token, as groups do: a grant by department
    lets its people in, a deny by office keeps that office out, and nobody else gets in."""
    h, gateway = harness
    finance = token("ledger", groups=(), department="finance", office="paris")
    in_the_lab = token("ledger", groups=(), department="finance", office="lab")
    elsewhere = token("ledger", groups=("eng",), department="hr")
    assert get(gateway, "ledger.apps.test", "/echo", cookie=finance).status_code == 200
    assert get(gateway, "ledger.apps.test", "/echo", cookie=in_the_lab).status_code == 404
    assert get(gateway, "ledger.apps.test", "/echo", cookie=elsewhere).status_code == 404
    assert [(e.details["effect"], e.details["rule"]) for e in h.events] == [
        ("allow", "finance-ledger"),
        ("deny", "ledger-not-from-the-lab"),
        ("deny", None),
    ]


def test_a_rule_that_names_identity_providers_holds_only_for_their_sessions(
    harness: tuple[Harness, GatewayThread],
) -> None:
    h, gateway = harness
    host = "wiki-admin.apps.test"
    assert get(gateway, host, "/echo", cookie=token("wiki-admin", idp="okta")).status_code == 200
    local = get(gateway, host, "/echo", cookie=token("wiki-admin", idp="local"))
    assert local.status_code == 403 and "identity provider" in local.text.lower()
    assert get(gateway, host, "/echo", cookie=token("wiki-admin")).status_code == 403
    assert [e.details["effect"] for e in h.events] == ["allow", "deny", "deny"]


def assert_decided_as_delete(h: Harness, allowed: bool) -> None:
    """The one event of a POST that may stand for a DELETE on the tickets app: allowed, or
    denied by the rule that no ticket is deleted, decided as the DELETE."""
    (event,) = h.events
    assert event.details["effect"] == ("allow" if allowed else "deny")
    if not allowed:
        assert event.details["rule"] == "tickets-never-deleted"
        assert event.details["context"]["method"] == "DELETE"  # type: ignore[index]


@pytest.mark.parametrize(
    ("target", "headers", "allowed"),
    [
        ("/echo/plain", {}, True),
        ("/echo/patch", {"x-http-method-override": "PATCH"}, True),
        ("/echo/by-header", {"x-http-method-override": "DELETE"}, False),
        ("/echo/by-other-header", {"x-http-method": "delete"}, False),
        ("/echo/by-a-list", {"x-http-method-override": "DELETE, POST"}, False),  # Express
        ("/echo/by-cgi-spelling", {"x_http_method_override": "DELETE"}, False),  # PHP-FPM
        ("/echo/by-query?_method=delete", {}, False),
        # Read as PHP reads a query (Symfony, Laravel): percent-decoded, dots and spaces are
        # underscores, the name ends at a NUL; Rack 2 also splits pairs at ";".
        ("/echo/escaped?%5Fmethod=delete", {}, False),
        ("/echo/dotted?.method=DELETE", {}, False),
        ("/echo/spaced?+.method=DELETE", {}, False),
        ("/echo/nul?_method%00x=DELETE", {}, False),
        ("/echo/semicolon?a=1;_method=DELETE", {}, False),
        ("/echo/other-name?method=DELETE", {}, True),
    ],
)
def test_a_post_that_stands_for_a_denied_method_is_denied(
    harness: tuple[Harness, GatewayThread],
    upstream: int,
    target: str,
    headers: dict[str, str],
    allowed: bool,
) -> None:
    """Frameworks run a POST as the method its X-HTTP-Method-Override (or `_method`) names:
    a rule that denies DELETE must hold for such a POST too, and the event says DELETE."""
    h, gateway = harness
    response = httpx.post(
        f"http://127.0.0.1:{gateway.port}{target}",
        headers={"host": "tickets.apps.test", "cookie": f"{COOKIE}={token('tickets')}", **headers},
    )
    assert response.status_code == (200 if allowed else 404)
    seen = httpx.get(f"http://127.0.0.1:{upstream}/seen").json()["seen"]
    assert (target.split("?")[0] in seen) is allowed
    assert_decided_as_delete(h, allowed)


def curl_post(
    gateway: GatewayThread, host: str, path: str, *args: str, minted: str | None = None
) -> tuple[int, int]:
    """POST with real curl (`args`: its body options) and a fresh token for the host's app,
    or the one `minted`; the status and the bytes sent."""
    cookie = minted or token(host.split(".")[0])
    done = subprocess.run(
        [
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}",
            "--max-time", "30",
            "-H", f"host: {host}", "-H", f"cookie: {COOKIE}={cookie}",
            *args, f"http://127.0.0.1:{gateway.port}{path}",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    status, sent = done.stdout.split()
    return int(status), int(sent)


def whole(upstream: int) -> dict[str, tuple[str, int]]:
    """The requests the app read to their end: path -> (method, body size)."""
    found = httpx.get(f"http://127.0.0.1:{upstream}/seen").json()["whole"]
    return {path: (method, size) for path, method, size in found}


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 MiB of random bytes: a body that crosses the gateway in many reads."""
    path = tmp_path_factory.mktemp("upload") / "file.bin"
    path.write_bytes(os.urandom(3 << 20))
    return path


_JSON = "content-type: application/json"
_CHUNKED = "transfer-encoding: chunked"
_FORM = "content-type: application/x-www-form-urlencoded"
_TEXT = "content-type: text/plain"
_JSON_DELETE = '{"_method": "DELETE"}'
_PARTS = '--BND\r\ncontent-disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--BND--\r\n'


@pytest.fixture(scope="module")
def gzipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A form naming `_method=DELETE`, gzip-compressed."""
    path = tmp_path_factory.mktemp("gzipped") / "form.gz"
    path.write_bytes(gzip.compress(b"title=x&_method=DELETE"))
    return path


@pytest.mark.parametrize(
    ("name", "body", "allowed"),
    [
        ("form", ["--data", "title=x&_method=delete"], False),
        ("form-escaped", ["--data", "title=x&%5F%6Dethod=DELETE"], False),
        ("form-php-dotted", ["--data", "title=x&.method=DELETE"], False),
        ("form-allowed-method", ["--data", "title=x&_method=PATCH"], True),
        ("form-no-override", ["--data", "title=x&method=DELETE"], True),
        ("form-chunked", ["-H", _CHUNKED, "--data", "_method=DELETE&title=x"], False),
        ("form-chunked-allowed", ["-H", _CHUNKED, "--data", "title=x"], True),
        ("multipart", ["-F", "title=x", "-F", "_method=DELETE"], False),
        ("multipart-after-a-file", ["-F", "file=@{upload}", "-F", "_method=DELETE"], False),
        ("multipart-a-file", ["-F", "file=@{upload}", "-F", "_method=PUT"], True),
        ("json", ["-H", _JSON, "--data", '{"title": "x", "_method": "DELETE"}'], False),
        ("json-escaped", ["-H", _JSON, "--data", '{"\\u005fmethod": "DELETE"}'], False),
        ("json-allowed", ["-H", _JSON, "--data", '{"title": "x", "method": "DELETE"}'], True),
        ("plain-text", ["-H", "content-type: text/plain", "--data", "_method=DELETE"], True),
        # The type as the most lenient framework reads it (Rack, PHP, Laravel).
        ("form-type-listed", ["-H", f"{_FORM}, text/plain", "--data", "_method=DELETE"], False),
        ("form-type-spaced", ["-H", f"{_FORM} text/plain", "--data", "_method=DELETE"], False),
        ("form-type-empty", ["-H", "content-type;", "--data", "_method=DELETE"], False),
        ("json-type-in-a-parameter", ["-H", f"{_TEXT}; x=/json", "--data", _JSON_DELETE], False),
        (
            "multipart-boundary-in-another-parameter",
            ["-H", "content-type: multipart/form-data; xboundary=BND", "--data-binary", _PARTS],
            False,
        ),
        # Express's body-parser inflates a compressed body before reading its fields.
        ("form-gzip", ["-H", "content-encoding: gzip", "--data-binary", "@{gzipped}"], False),
    ],
)
def test_a_post_whose_body_names_a_denied_method_never_reaches_its_app_whole(
    harness: tuple[Harness, GatewayThread],
    upstream: int,
    upload: Path,
    gzipped: Path,
    name: str,
    body: list[str],
    allowed: bool,
) -> None:
    """Rails (Rack::MethodOverride), Symfony and Laravel run a POST as the method its body's
    `_method` field names, in a form, a multipart form or (Laravel) JSON. The gateway reads
    such a body as it streams to the app, holding back its last byte: a refused method's
    answer replaces the app's, which never gets the request whole, and the event is that
    method's decision. Bodies that no framework reads fields from pass as they are."""
    h, gateway = harness
    path = f"/echo/{name}"
    args = [arg.replace("{upload}", str(upload)).replace("{gzipped}", str(gzipped)) for arg in body]
    status, sent = curl_post(gateway, "tickets.apps.test", path, *args)
    assert status == (200 if allowed else 404)
    if allowed:  # every byte arrived, the last one too (curl counts chunks' framing)
        assert whole(upstream)[path] == ("POST", len(args[-1]) if _CHUNKED in args else sent)
        assert sent > (3 << 20 if "file" in name else 0)
    else:
        assert path not in whole(upstream)
    assert_decided_as_delete(h, allowed)


def test_a_connection_option_may_not_drop_the_type_the_body_was_read_by(
    harness: tuple[Harness, GatewayThread], upstream: int
) -> None:
    """A proxy drops the headers Connection names. Had the gateway read this body as text
    and then dropped its Content-Type, Rack would read it as a form: a DELETE. The app gets
    the type the gateway read the body by."""
    h, gateway = harness
    response = httpx.post(
        f"http://127.0.0.1:{gateway.port}/echo/connection-names-the-type",
        headers={
            "host": "tickets.apps.test",
            "cookie": f"{COOKIE}={token('tickets')}",
            "connection": "close, content-type, content-encoding",
            "content-type": "text/plain",
        },
        content=b"_method=DELETE",
    )
    assert response.status_code == 200
    assert ["content-type", "text/plain"] in response.json()["headers"]
    assert_decided_as_delete(h, allowed=True)  # decided as the POST it is to the app


def test_a_body_s_method_is_not_read_where_the_policy_allows_every_method(
    harness: tuple[Harness, GatewayThread], upstream: int
) -> None:
    """The wiki's rule names no methods: a `_method` changes nothing there, so its body is
    not read and reaches the app as it came."""
    h, gateway = harness
    status, _ = curl_post(gateway, "wiki.apps.test", "/echo/wiki-form", "--data", "_method=DELETE")
    assert status == 200
    assert whole(upstream)["/echo/wiki-form"] == ("POST", len("_method=DELETE"))
    assert [e.details["effect"] for e in h.events] == ["allow"]


def test_pipelined_posts_are_each_read_for_their_method(
    harness: tuple[Harness, GatewayThread], upstream: int
) -> None:
    """The second request's body has been read ahead, whole, by the time it is decided:
    it is read for its `_method` before anything of it is sent."""
    h, gateway = harness
    cookie = f"{COOKIE}={token('tickets')}"

    def post(path: str, body: bytes) -> bytes:
        return (
            b"POST %b HTTP/1.1\r\nhost: tickets.apps.test\r\ncookie: %b\r\n"
            b"content-type: application/x-www-form-urlencoded\r\ncontent-length: %d\r\n\r\n%b"
            % (path.encode(), cookie.encode(), len(body), body)
        )

    first, second = post("/echo/piped-1", b"title=x"), post("/echo/piped-2", b"_method=DELETE")
    answers = split_responses(raw(gateway.port, first + second, wait=2))
    assert [status for status, _ in answers] == [200, 404]
    assert "/echo/piped-1" in whole(upstream) and "/echo/piped-2" not in whole(upstream)
    assert [e.details["effect"] for e in h.events] == ["allow", "deny"]


def daily(start: datetime, end: datetime) -> str:
    """A rule's `when` line: every day from `start` to `end` (their times of day, UTC)."""
    every_day = "[mon, tue, wed, thu, fri, sat, sun]"
    hours = f"{start:%H:%M}-{end:%H:%M}"
    return f"    when: {{time: {{weekdays: {every_day}, hours: '{hours}', time_zone: UTC}}}}\n"


def swap_policy(h: Harness, gateway: GatewayThread, text: str) -> Snapshot:
    """The gateway takes a snapshot of the harness's with the policy `text` (serial 2)."""
    changed = replace(h.snapshot, serial=2, policy=parse_policy(text))
    gateway.call(lambda: h.enforcer.swap(build_state(changed, jwks([KEY]))))
    return changed


def websocket(gateway: GatewayThread, cookie: str) -> ClientConnection:
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    headers = {"cookie": f"{COOKIE}={cookie}"}
    return websocket_connect(
        "ws://wiki.apps.test/ws", sock=sock, additional_headers=headers, open_timeout=5
    )


def test_a_websocket_outlives_its_token_but_not_its_time_window(
    harness: tuple[Harness, GatewayThread],
) -> None:
    """Decided at the upgrade, then again with every snapshot and every few seconds: the
    ten-minute token running out does not cut it (an unrelated change in the control plane
    used to), the policy's time window closing does."""
    h, gateway = harness
    now = datetime.now(UTC)
    by_day = swap_policy(
        h,
        gateway,
        "rules:\n"
        "  - name: eng-wiki-by-day\n"
        "    who: {groups: [eng]}\n"
        "    what: {apps: [wiki]}\n" + daily(now - timedelta(hours=1), now + timedelta(hours=1)),
    )
    with websocket(gateway, token("wiki")) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        h.clock_offset = 20 * 60  # the token has run out, the window is still open
        unrelated = replace(by_day, serial=3)
        gateway.call(lambda: h.enforcer.swap(build_state(unrelated, jwks([KEY]))))
        assert gateway.call(gateway.gateway.recheck_tunnels) == 0
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"
        h.clock_offset = 3 * 3600  # the window has closed
        assert gateway.call(gateway.gateway.recheck_tunnels) == 1
        with pytest.raises(ConnectionClosed):
            ws.send("and now?")
            ws.recv(timeout=5)


def test_a_websocket_ends_with_its_session(harness: tuple[Harness, GatewayThread]) -> None:
    """A session that reaches its end (12 hours after sign-in, by default) is not listed as
    revoked anywhere; the token names when it ends, and the recheck cuts the WebSocket then."""
    h, gateway = harness
    ends = datetime.now(UTC) + timedelta(hours=1)
    with websocket(gateway, token("wiki", session_ends=ends)) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        h.clock_offset = 50 * 60  # the token has run out, the session has not
        assert gateway.call(gateway.gateway.recheck_tunnels) == 0
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"
        h.clock_offset = 61 * 60
        assert gateway.call(gateway.gateway.recheck_tunnels) == 1
        with pytest.raises(ConnectionClosed):
            ws.send("and now?")
            ws.recv(timeout=5)


def test_long_lived_connections_are_cut_when_the_snapshot_grows_too_old(upstream: int) -> None:
    """The gateway's periodic recheck: with no policy fresh enough to decide (fail closed),
    no WebSocket stays open either."""
    harness = Harness(upstream)
    guard = Guard()
    guard.enforcer = harness.enforcer
    with GatewayThread(guard, free_port()) as gateway:
        stop = asyncio.Event()
        asyncio.run_coroutine_threadsafe(
            recheck_long_lived(gateway.gateway, guard, stop, seconds=0.05), gateway.loop
        )
        try:
            with websocket(gateway, token("wiki")) as ws:
                ws.send("hello")
                assert ws.recv(timeout=5) == "hello"
                time.sleep(0.3)  # several rechecks: nothing changed, nothing is cut
                ws.send("still here")
                assert ws.recv(timeout=5) == "still here"
                guard.enforcer = None  # what the gateway does when its snapshot is too old
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=5)
        finally:
            gateway.loop.call_soon_threadsafe(stop.set)


def test_remembered_decisions_stay_within_their_memory_for_long_paths(upstream: int) -> None:
    """A signed-in person can ask for as many distinct long paths as they like; the decisions
    the gateway remembers for them must not grow past their budget (40 MB)."""
    harness = Harness(upstream)
    cookie = f"{COOKIE}={token('wiki')}".encode()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for n in range(4000):
            path = f"/p{n}/" + "a" * 8000
            head = RequestHead(
                "GET", path, "", "wiki.apps.test", None, BodyFraming.NONE, None, True, False,
                None, ((b"host", b"wiki.apps.test"), (b"cookie", cookie)),
            )  # fmt: skip
            assert isinstance(harness.enforcer.handle(Request(head, path, "127.0.0.1")), Forward)
        grown = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert grown < 56 << 20, f"{grown >> 20} MB"


def test_verified_tokens_stay_within_their_memory(upstream: int) -> None:
    """Anybody signed in can mint as many tokens as they like (/portal/token), each naming
    every group they are in. What the gateway keeps for them (verified tokens, their sets of
    groups, identity headers, decisions, cookies) must stay within those memos' budgets, 140 MB
    in all: counted in entries, 10,000 tokens of 200 groups held 296 MB."""
    harness = Harness(upstream)
    groups = ("eng", *(f"group-{n:03d}" for n in range(200)))
    tokens = [token("wiki", groups=groups) for _ in range(10_000)]
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for minted in tokens:
            cookie = f"{COOKIE}={minted}".encode()
            head = RequestHead(
                "GET", "/", "", "wiki.apps.test", None, BodyFraming.NONE, None, True, False,
                None, ((b"host", b"wiki.apps.test"), (b"cookie", cookie)),
            )  # fmt: skip
            assert isinstance(harness.enforcer.handle(Request(head, "/", "127.0.0.1")), Forward)
        grown = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    assert grown < 140 << 20, f"{grown >> 20} MB"


def test_a_body_s_method_is_decided_at_the_request_s_own_time(
    harness: tuple[Harness, GatewayThread], upstream: int
) -> None:
    """The POST's own decision is remembered (no condition of it reads the clock); the
    method its body names is decided when the body arrives, not at the time of the
    decision remembered: a DELETE allowed only by day is refused once the day is over."""
    h, gateway = harness
    now = datetime.now(UTC)
    swap_policy(
        h,
        gateway,
        "rules:\n"
        "  - name: eng-wiki\n"
        "    who: {groups: [eng]}\n"
        "    what: {apps: [wiki], methods: [GET, POST]}\n"
        "  - name: eng-wiki-delete-by-day\n"
        "    who: {groups: [eng]}\n"
        "    what: {apps: [wiki], methods: [DELETE]}\n"
        + daily(now - timedelta(hours=1), now + timedelta(hours=1)),
    )
    minted = token("wiki", expires_at=now + timedelta(hours=4))

    def post(path: str, body: str) -> int:
        return curl_post(gateway, "wiki.apps.test", path, "--data", body, minted=minted)[0]

    assert post("/echo/by-day", "_method=DELETE") == 200  # by day: the DELETE is allowed
    h.clock_offset = 3 * 3600  # the day is over; the POST's decision is still remembered
    assert post("/echo/by-day", "title=x") == 200
    assert post("/echo/by-day", "_method=DELETE") == 403
    assert [e.details["effect"] for e in h.events] == ["allow", "allow", "deny"]
    assert h.events[-1].details["context"]["method"] == "DELETE"  # type: ignore[index]


def test_a_post_found_plain_is_read_again_once_the_policy_changes(
    harness: tuple[Harness, GatewayThread], upstream: int
) -> None:
    """Where no method is stricter than POST, the gateway remembers that it need not read
    the POST's body; a new policy that refuses DELETE must make it read the body again."""
    h, gateway = harness
    minted = token("wiki")

    def post(body: str) -> int:
        path = "/echo/plain-post"
        return curl_post(gateway, "wiki.apps.test", path, "--data", body, minted=minted)[0]

    assert post("_method=DELETE") == 200  # the wiki's rule names no method: nothing to read
    assert post("_method=DELETE") == 200  # remembered
    swap_policy(
        h,
        gateway,
        POLICY
        + "  - name: wiki-never-deleted\n"
        + "    who: everyone\n"
        + "    what: {apps: [wiki], methods: [DELETE]}\n"
        + "    effect: deny\n",
    )
    assert post("_method=DELETE") == 404
    assert [e.details["effect"] for e in h.events] == ["allow", "allow", "deny"]
    assert h.events[-1].details["rule"] == "wiki-never-deleted"


def test_a_post_is_not_remembered_as_plain_when_a_method_s_answer_depends_on_the_time(
    harness: tuple[Harness, GatewayThread], upstream: int
) -> None:
    """No method is stricter than POST now, but DELETE is refused at night: that "none" is
    not remembered, and the same POST at night is refused."""
    h, gateway = harness
    now = datetime.now(UTC)
    swap_policy(
        h,
        gateway,
        "rules:\n"
        "  - name: eng-wiki\n"
        "    who: {groups: [eng]}\n"
        "    what: {apps: [wiki]}\n"
        "  - name: wiki-no-deletes-at-night\n"
        "    who: everyone\n"
        "    what: {apps: [wiki], methods: [DELETE]}\n"
        + daily(now + timedelta(hours=2), now + timedelta(hours=3))
        + "    effect: deny\n",
    )
    minted = token("wiki", expires_at=now + timedelta(hours=4))

    def post(body: str) -> int:
        path = "/echo/by-night"
        return curl_post(gateway, "wiki.apps.test", path, "--data", body, minted=minted)[0]

    assert post("_method=DELETE") == 200  # by day
    h.clock_offset = 2.5 * 3600  # night
    assert post("_method=DELETE") == 404
    assert h.events[-1].details["rule"] == "wiki-no-deletes-at-night"
