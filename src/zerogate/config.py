"""Settings: the one place every zerogate setting is defined.

Every process (control plane, gateway, connector, agent, CLI) builds one immutable
`Settings` at start-up from, in rising precedence: defaults, a TOML file, `ZEROGATE_*`
environment variables and command-line flags. Validation happens here, before anything
touches data, and every error names where the bad value came from: the file, the line
and the key, or the environment variable.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from zerogate.core.http.framing import is_header_name


def _not_bool(value: object) -> object:
    # TOML `true` would otherwise pass as the integer 1.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


Port = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65535)]
ENV_PREFIX = "ZEROGATE_"
_HOST_RE = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9*]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+\Z")


class OidcRuleSettings(BaseModel):
    """`[[oidc_providers.rules]]`: when a claim matches, add groups / set department, office."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    claim: str
    equals: str | None = None
    suffix: str | None = None
    add_groups: tuple[str, ...] = ()
    department: str | None = None
    office: str | None = None


class OidcProviderSettings(BaseModel):
    """`[[oidc_providers]]`: one single sign-on provider (any OpenID Connect issuer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    display_name: str = Field(min_length=1, max_length=64)
    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: tuple[str, ...] = ("openid", "email", "profile", "groups")
    rules: tuple[OidcRuleSettings, ...] = ()
    clock_skew_seconds: int = Field(default=60, ge=0, le=600)
    # The provider's group claim copied into same-named zerogate groups (admins included!).
    copy_groups_claim: str | None = None


class Settings(BaseModel):
    """Validated settings; frozen so no component can change them behind another's back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path("zerogate-data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means SQLite in the data directory.",
    )
    listen_host: str = "127.0.0.1"
    control_port: Port = 8443
    gateway_port: Port = 8444
    gateway_http_port: Port | None = None  # plain HTTP that redirects to the gateway's HTTPS
    gateway_workers: Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=256)] = 0
    gateway_certs_dir: Path | None = None  # admin-supplied NAME.pem + NAME.key, by SNI
    gateway_tunnel_port: Port | None = 8445  # connectors dial in here (mutual TLS)
    # Unconfirmed audit events (MB) at which the gateway refuses requests; 0: until disk full.
    gateway_audit_spool_max_mb: Annotated[int, BeforeValidator(_not_bool), Field(ge=0)] = 4096
    # Request headers dropped before an app sees them, beside the built-in identity ones:
    # those an app trusts for identity (Grafana's X-WEBAUTH-USER, Remote-Group, ...).
    gateway_strip_headers: tuple[str, ...] = ()
    public_hostnames: tuple[str, ...] = ("localhost",)
    app_domain: str = "zerogate.localhost"
    ca_key: SecretStr | None = None
    ca_key_file: Path | None = None
    mfa_required_for_everyone: bool = False
    session_idle_minutes: Annotated[
        int, BeforeValidator(_not_bool), Field(ge=1, le=7 * 24 * 60)
    ] = 60
    session_max_hours: Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=30 * 24)] = 12
    oidc_providers: tuple[OidcProviderSettings, ...] = ()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return value

    @field_validator("public_hostnames")
    @classmethod
    def _hostnames(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if not _HOST_RE.match(host):
                raise ValueError(f"{host!r} is not a valid host name")
        return value

    @field_validator("gateway_strip_headers")
    @classmethod
    def _header_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not is_header_name(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
        return tuple(name.lower() for name in value)

    @field_validator("app_domain")
    @classmethod
    def _app_domain(cls, value: str) -> str:
        if not _HOST_RE.match(value) or "*" in value:
            raise ValueError(f"{value!r} is not a valid DNS domain")
        return value.lower().rstrip(".")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'zerogate.db'}"

    @property
    def effective_ca_key_file(self) -> Path:
        return self.ca_key_file or self.data_dir / "ca" / "kek"

    @property
    def control_url(self) -> str:
        wildcard = self.listen_host in ("127.0.0.1", "::1", "0.0.0.0", "::")  # noqa: S104
        host = "localhost" if wildcard else self.listen_host
        return f"https://{host}:{self.control_port}"


@dataclass(frozen=True, slots=True)
class ConfigError(Exception):
    """A setting that cannot be used, with where it came from."""

    source: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.key}: {self.message}"


def _key_line(text: str, key: str) -> int | None:
    """Line of `key = ...` in a flat TOML file (tomllib keeps no positions)."""
    quoted = re.escape(key)
    pattern = re.compile(rf"^\s*((\"{quoted}\"|{quoted})\s*=|\[+\s*{quoted}\s*[\].])")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def _read_file(path: Path) -> tuple[dict[str, object], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "file", "configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "file", f"cannot read: {exc}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        # Python < 3.14 keeps the position only in the message: "... (at line 3, column 16)".
        found = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
        message = getattr(exc, "msg", None) or re.sub(r"\s*\(at line .*\)$", "", str(exc))
        raise ConfigError(str(path), "syntax", f"invalid TOML: {message}", line) from None


def _from_env(environ: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, field in Settings.model_fields.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        if field.annotation is not None and "tuple" in str(field.annotation):
            values[name] = tuple(part.strip() for part in raw.split(",") if part.strip())
        else:
            values[name] = raw
    return values


def _validate(
    merged: dict[str, object], origins: dict[str, str], texts: dict[str, str]
) -> Settings:
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        source = origins.get(key, "settings")
        message = first["msg"]
        if first["type"] == "extra_forbidden":
            message = "unknown setting"
        line = _key_line(texts[source], key) if source in texts else None
        if source.startswith("environment"):
            source = f"environment variable {ENV_PREFIX}{key.upper()}"
        raise ConfigError(source, key, message, line) from None


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Build the settings: defaults < file < environment < explicit overrides (CLI flags).

    The file is `config_file`, else `$ZEROGATE_CONFIG`; none is fine.
    """
    env = os.environ if environ is None else environ
    merged: dict[str, object] = {}
    origins: dict[str, str] = {}
    texts: dict[str, str] = {}
    path = config_file or (Path(env["ZEROGATE_CONFIG"]) if env.get("ZEROGATE_CONFIG") else None)
    if path is not None:
        data, text = _read_file(path)
        texts[str(path)] = text
        for key, value in data.items():
            merged[key], origins[key] = value, str(path)
    for key, value in _from_env(env).items():
        merged[key], origins[key] = value, "environment"
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key], origins[key] = value, "command line"
    return _validate(merged, origins, texts)
