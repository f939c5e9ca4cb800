"""A real OpenID Provider for SSO tests, and a scripted browser that logs in through it.

The provider is npm `oidc-provider` 9 (tests/oidc/provider.mjs) run by Node 22, both installed
once by scripts/install-oidc-provider.sh into a cache directory outside the repository. Each
test starts its own provider on a free loopback port through the `oidc_provider` factory
fixture and gets it stopped afterwards; `restart(jwks)` brings it back on the same port (same
issuer) with other signing keys, for key-rotation tests.

Use it with `pytest_plugins = ["oidc.fixture"]` (with tests/ on sys.path) or by importing it.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
import pytest
from joserfc.jwk import ECKey

from netkit import free_port

TESTS = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = TESTS.parent / "scripts" / "install-oidc-provider.sh"
PROVIDER_SCRIPT = Path(__file__).with_name("provider.mjs")
STARTUP_TIMEOUT = 20.0  # seconds; Node starts in well under one
INSTALL_TIMEOUT = 600.0
NPM_MISSING = 3  # exit status of the install script when npm is not installed

CLIENT_ID = "zerogate-test"
CLIENT_SECRET = "zerogate-test-secret"

USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "email": "alice@example.test",
        "email_verified": True,
        "name": "Alice Example",
        "groups": ["eng", "admins"],
    },
    "bob": {
        "email": "bob@sales.example.test",
        "email_verified": False,
        "name": "Bob Example",
        "groups": ["sales"],
    },
}

Jwks = dict[str, list[dict[str, Any]]]


def signing_key(kid: str) -> dict[str, Any]:
    """A fresh private P-256 JWK (ES256) for the provider to sign ID tokens with."""
    key = ECKey.generate_key("P-256", {"kid": kid, "use": "sig", "alg": "ES256"}, private=True)
    return dict(key.as_dict(private=True))


def _id_token_alg(jwks: Jwks) -> str:
    first = jwks["keys"][0]
    return str(first.get("alg") or {"EC": "ES256", "OKP": "EdDSA"}.get(first["kty"], "RS256"))


@dataclass
class RunningProvider:
    """One provider process; `issuer` stays the same across `restart`."""

    issuer: str
    client_id: str
    client_secret: str
    port: int
    jwks: Jwks
    _modules: Path = field(repr=False)
    _base_env: dict[str, str] = field(repr=False)
    _workdir: Path = field(repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        env = {
            **self._base_env,
            "OIDC_JWKS": json.dumps(self.jwks),
            "OIDC_ID_TOKEN_ALG": _id_token_alg(self.jwks),
        }
        out, err = self._workdir / "stdout", self._workdir / "stderr"
        with out.open("wb") as stdout, err.open("ab") as stderr:
            self._process = subprocess.Popen(
                [str(self._modules / "node_modules" / ".bin" / "node"), str(PROVIDER_SCRIPT)],
                env=env,
                cwd=self._workdir,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not out.read_bytes().startswith(b"READY "):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = err.read_text(errors="replace")[-3000:]
                pytest.fail(f"oidc-provider did not start on port {self.port}:\n{log}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def restart(self, jwks: Jwks | None = None) -> None:
        """Stop and start again on the same port, with new signing keys if given.

        The provider keeps its state in memory, so sessions, codes and grants do not survive.
        """
        self.stop()
        if jwks is not None:
            self.jwks = jwks
        self.start()

    @property
    def log(self) -> str:
        return (self._workdir / "stderr").read_text(errors="replace")


StartProvider = Callable[..., RunningProvider]


@pytest.fixture(scope="session")
def oidc_provider_modules() -> Path:
    """The directory with oidc-provider and Node 22, installed on first use."""
    modules = os.environ.get("ZEROGATE_OIDC_PROVIDER_DIR")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = Path(modules) if modules else cache / "zerogate" / "oidc-provider"
    result = subprocess.run(
        [str(INSTALL_SCRIPT), str(target)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if result.returncode == NPM_MISSING:
        pytest.skip("npm is not installed, so the test OpenID Provider (oidc-provider) cannot be")
    if result.returncode != 0:
        pytest.fail(f"scripts/install-oidc-provider.sh failed:\n{result.stderr[-3000:]}")
    return target


@pytest.fixture
def oidc_provider(oidc_provider_modules: Path) -> Iterator[StartProvider]:
    """A factory: `start(redirect_uris, users=USERS, jwks=None, conform=False)`.

    `jwks` is a private JWK Set to sign with (default: one fresh ES256 key). `conform=True`
    makes the provider put only `sub` in the ID token and the other claims in userinfo.
    Every provider started is stopped when the test ends.
    """
    started: list[RunningProvider] = []
    workdirs: list[tempfile.TemporaryDirectory[str]] = []

    def start(
        redirect_uris: Sequence[str],
        users: Mapping[str, Mapping[str, Any]] = USERS,
        jwks: Jwks | None = None,
        *,
        conform: bool = False,
    ) -> RunningProvider:
        port = free_port()
        workdir = tempfile.TemporaryDirectory(prefix="zg-oidc-")
        workdirs.append(workdir)
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OIDC_MODULES": str(oidc_provider_modules),
            "OIDC_PORT": str(port),
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
            "OIDC_USERS": json.dumps(users),
            "OIDC_CONFORM": "1" if conform else "0",
            "OIDC_COOKIE_KEY": os.urandom(16).hex(),
        }
        provider = RunningProvider(
            issuer=f"http://127.0.0.1:{port}",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            port=port,
            jwks=jwks if jwks is not None else {"keys": [signing_key("key-1")]},
            _modules=oidc_provider_modules,
            _base_env=base_env,
            _workdir=Path(workdir.name),
        )
        started.append(provider)
        provider.start()
        return provider

    try:
        yield start
    finally:
        for provider in started:
            provider.stop()
        for workdir in workdirs:
            workdir.cleanup()


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>.*?name="prompt" value="(\w+)"', re.S)
_ABORT = re.compile(r'href="([^"]+/abort)"')


async def scripted_login(
    authorize_url: str,
    username: str,
    *,
    http: httpx2.AsyncClient,
    deny: bool = False,
    max_steps: int = 12,
) -> str:
    """Act as the user's browser: follow the provider's redirects, sign in as `username` on
    its development login form, consent, and return the URL it redirects back to (the
    redirect_uri with `code`, `state` and `iss`). `deny=True` cancels at the login form, so the
    provider answers `error=access_denied`. `http` must keep cookies and not follow redirects.
    """
    redirect_uri = parse_qs(urlsplit(authorize_url).query)["redirect_uri"][0]
    response = await http.get(authorize_url)
    for _ in range(max_steps):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.split("?", 1)[0] == redirect_uri:
                return location
            response = await http.get(location)
            continue
        if response.status_code != 200:
            raise AssertionError(f"provider answered {response.status_code}: {response.text[:500]}")
        response = await _submit(http, str(response.url), response.text, username, deny)
    raise AssertionError(f"no redirect to {redirect_uri} after {max_steps} steps")


async def _submit(
    http: httpx2.AsyncClient, url: str, page: str, username: str, deny: bool
) -> httpx2.Response:
    form = _FORM.search(page)
    if form is None:
        raise AssertionError(f"no interaction form at {url}: {page[:500]}")
    action, prompt = urljoin(url, html.unescape(form[1])), form[2]
    if deny:
        abort = _ABORT.search(page)
        if abort is None:
            raise AssertionError(f"no cancel link at {url}")
        return await http.get(urljoin(url, html.unescape(abort[1])))
    if prompt == "login":
        return await http.post(action, data={"prompt": "login", "login": username, "password": "x"})
    if prompt == "consent":
        return await http.post(action, data={"prompt": "consent"})
    raise AssertionError(f"unexpected interaction prompt {prompt!r} at {url}")
