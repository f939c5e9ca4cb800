"""Portal plumbing: templates, cookies, CSRF, and the portal's own settings.

Every state-changing form carries a CSRF token that must equal the `zg_csrf` cookie
(double-submit; the cookie is SameSite=Strict and HttpOnly), and a present `Origin` header
must be the portal's own. Cookies are always Secure and HttpOnly: the portal is only ever
served over HTTPS.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from zerogate.control.portal.oidc import OidcClient
from zerogate.core.sealing import SecretSealer
from zerogate.store.sessions import SessionPolicy

SESSION_COOKIE = "zg_session"
FLOW_COOKIE = "zg_flow"
CSRF_COOKIE = "zg_csrf"

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)


@dataclass(frozen=True, slots=True)
class PortalConfig:
    sealer: SecretSealer  # opens TOTP seeds
    signing_sealer: SecretSealer  # opens token signing keys
    session_policy: SessionPolicy = field(default_factory=SessionPolicy)
    mfa_required_for_everyone: bool = False
    # Single sign-on: one relying party per configured provider, by its URL name.
    sso: Mapping[str, OidcClient] = field(default_factory=dict)


class CsrfError(Exception):
    """The form did not come from our own page."""


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:500]


def csrf_token(request: Request) -> str:
    """The token for forms on this page: the cookie's value, or a new one to set."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    return existing if len(existing) == 43 else secrets.token_urlsafe(32)


def check_csrf(request: Request, submitted: str) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        raise CsrfError
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise CsrfError


def render(request: Request, template: str, status: int = 200, **context: object) -> HTMLResponse:
    token = csrf_token(request)
    html = _templates.get_template(template).render(csrf=token, **context)
    response = HTMLResponse(html, status_code=status)
    response.set_cookie(
        CSRF_COOKIE, token, secure=True, httponly=True, samesite="strict", path="/portal"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    )
    # same-origin, not no-referrer: with no-referrer browsers send `Origin: null` on our own
    # form posts, and the Origin check could not tell them from a forged cross-site post.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def set_session_cookie(response: Response, secret: str, policy: SessionPolicy) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(policy.absolute.total_seconds()),
        secure=True,
        httponly=True,
        samesite="lax",
        path="/",
    )


def set_flow_cookie(response: Response, secret: str) -> None:
    response.set_cookie(
        FLOW_COOKIE, secret, max_age=600, secure=True, httponly=True, samesite="lax", path="/portal"
    )


def clear_cookie(response: Response, name: str, path: str = "/") -> None:
    response.delete_cookie(name, path=path, secure=True, httponly=True)
