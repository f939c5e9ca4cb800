"""Value rules of inventory fields (names.py) as the schemas (schemas.py) apply them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from zerogate.core.inventory import (
    AppKind,
    AppSpec,
    ConnectorGroupSpec,
    ConnectorSpec,
    DepartmentSpec,
    DeviceSpec,
    GatewaySpec,
    GroupSpec,
    OfficeSpec,
    UserSpec,
)
from zerogate.core.inventory.names import (
    check_address,
    check_dns_name,
    check_email,
    check_host_port,
    check_http_url,
)


def errors(spec: type[BaseModel], **fields: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """The (location, message) of every error, or fail if the object validates."""
    with pytest.raises(ValidationError) as caught:
        spec.model_validate(fields)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors(include_url=False)]


def http_app(**fields: Any) -> dict[str, Any]:
    return (
        {"name": "wiki", "kind": "http", "hostname": "wiki.example.com"}
        | {"target": "http://wiki.internal:8080/"}
        | fields
    )


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "A9", "web-01", "svc_a.b", "x" * 64, "0start"])
def test_valid_names(name: str) -> None:
    assert DepartmentSpec(name=name).name == name


@pytest.mark.parametrize(
    "name", ["", "-lead", ".lead", "_lead", "x" * 65, "has space", "slash/", "é", "a\n", "a\x00"]
)
def test_invalid_names(name: str) -> None:
    assert [loc for loc, _ in errors(DepartmentSpec, name=name)] == [("name",)]


@pytest.mark.parametrize("username", ["alice", "alice@example.com", "a.b+c", "svc-1", "u" * 128])
def test_valid_usernames(username: str) -> None:
    assert UserSpec(username=username).username == username


@pytest.mark.parametrize("username", ["", "@alice", "u" * 129, "al ice", "bob\n", "bob\x00"])
def test_invalid_usernames(username: str) -> None:
    assert [loc for loc, _ in errors(UserSpec, username=username)] == [("username",)]


def test_name_must_be_a_string() -> None:
    assert [loc for loc, _ in errors(GroupSpec, name=5)] == [("name",)]


def test_unknown_field_is_an_error() -> None:
    [(loc, _)] = errors(GroupSpec, name="g", descripton="typo")
    assert loc == ("descripton",)


def test_strict_bool() -> None:
    assert [loc for loc, _ in errors(UserSpec, username="u", disabled="yes")] == [("disabled",)]


# --- DNS names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("app.example.com", "app.example.com"),
        ("App.Example.COM", "app.example.com"),
        ("app.example.com.", "app.example.com"),
        ("a-b.c", "a-b.c"),
        ("x" * 63 + ".com", "x" * 63 + ".com"),
    ],
)
def test_valid_dns_names(value: str, expected: str) -> None:
    assert check_dns_name(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "localhost",  # a single label is not fully qualified
        "*.example.com",
        "-a.example.com",
        "a-.example.com",
        "a..example.com",
        "a_b.example.com",
        "x" * 64 + ".com",
        ("a" * 60 + ".") * 5 + "com",  # over 253 characters
        "app.example.com\x00",
        "app\texample.com",
        "ex ample.com",
    ],
)
def test_invalid_dns_names(value: str) -> None:
    with pytest.raises(ValueError, match="not a valid DNS name"):
        check_dns_name(value)


def test_dns_name_with_trailing_newline_refused() -> None:
    assert errors(AppSpec, **http_app(hostname="app.example.com\n"))


# --- host:port -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("db.internal:5432", "db.internal:5432"),
        ("DB:5432", "db:5432"),  # single label allowed inside a private network
        ("10.0.0.5:22", "10.0.0.5:22"),
        ("[::1]:80", "[::1]:80"),
        ("[2001:DB8::0001]:443", "[2001:db8::1]:443"),
        ("host:1", "host:1"),
        ("host:65535", "host:65535"),
        ("host:0080", "host:80"),
    ],
)
def test_valid_host_ports(value: str, expected: str) -> None:
    assert check_host_port(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("db.internal", "must be host:port"),
        (":5432", "must be host:port"),
        ("host:0", "port"),
        ("host:65536", "port"),
        ("host:", "port"),
        ("host:http", "port"),
        ("host:-1", "port"),
        ("host:+80", "port"),
        ("host:8 0", "port"),
        ("bad_host:80", "not a valid host name"),
        ("[::1:80", "not a valid host name"),
        ("[]:80", "not a valid host name"),
        ("host:80\x00", "control characters"),
        ("host\n:80", "control characters"),
    ],
)
def test_invalid_host_ports(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_host_port(value)


def test_unbracketed_ipv6_refused() -> None:
    with pytest.raises(ValueError):
        check_host_port("fe80::1:22")


def test_superscript_port_gets_the_port_message() -> None:
    with pytest.raises(ValueError, match="port in"):
        check_host_port("host:²")


# --- http URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "http://wiki.internal",
        "https://wiki.internal:8443/base/path",
        "http://10.1.2.3:8080/",
        "http://[::1]:8080/",
        "HTTP://Wiki.Internal/",
    ],
)
def test_valid_http_urls(value: str) -> None:
    assert check_http_url(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://wiki.internal/", "must start with http"),
        ("wiki.internal:80", "must start with http"),
        ("//wiki.internal/", "must start with http"),
        ("http:///path", "has no host"),
        ("http://user:pw@wiki.internal/", "credentials"),
        ("http://user@wiki.internal/", "credentials"),
        ("http://wiki.internal/?a=1", "query or fragment"),
        ("http://wiki.internal/#top", "query or fragment"),
        ("http://wiki.internal:0/", "port"),
        ("http://wiki.internal:65536/", "port"),
        ("http://wiki.internal:http/", "port"),
        ("http://bad_host/", "not a valid host name"),
        ("http://wiki.internal/a b", "spaces or control"),
        ("http://wiki.internal/\x00", "spaces or control"),
        ("http://wiki.internal/\n", "spaces or control"),
        ("http://wiki.internal/\x7f", "spaces or control"),
    ],
)
def test_invalid_http_urls(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_http_url(value)


@pytest.mark.parametrize("value", ["http://wiki.internal/?", "http://wiki.internal/#"])
def test_empty_query_or_fragment_refused(value: str) -> None:
    with pytest.raises(ValueError):
        check_http_url(value)


# --- e-mail and addresses --------------------------------------------------------------------


def test_email_rules() -> None:
    assert check_email("ann@example.com") == "ann@example.com"
    for bad in ["ann", "ann@", "@example.com", "a@b@c", "a b@c.d", "ann@example.com\n", "a@\x00"]:
        with pytest.raises(ValueError, match="not a valid e-mail"):
            check_email(bad)


def test_gateway_address_forms() -> None:
    assert check_address("https://gw.example.com") == "https://gw.example.com"
    assert check_address("GW.example.com:443") == "gw.example.com:443"
    with pytest.raises(ValueError):
        check_address("http://gw.example.com")  # not https, and not host:port either
    with pytest.raises(ValueError):
        check_address("https://user@gw.example.com")


# --- control characters in every text field --------------------------------------------------

_VALID: dict[type[BaseModel], dict[str, Any]] = {
    DepartmentSpec: {"name": "d", "description": "text"},
    OfficeSpec: {"name": "o", "location": "text", "description": "text"},
    GroupSpec: {"name": "g", "description": "text"},
    ConnectorGroupSpec: {"name": "cg", "region": "text", "description": "text"},
    ConnectorSpec: {"name": "c", "connector_group": "cg", "description": "text"},
    GatewaySpec: {
        "name": "gw",
        "region": "text",
        "public_address": "gw.example.com:443",
        "description": "text",
    },
    UserSpec: {
        "username": "u",
        "email": "u@example.com",
        "display_name": "text",
        "department": "d",
        "office": "o",
        "groups": ["g"],
    },
    AppSpec: http_app(connector_group="cg", tags=["t"], owner="text", description="text"),
    DeviceSpec: {"name": "dev", "user": "u", "serial": "text", "description": "text"},
}
_NOT_FREE_STRINGS = {"kind", "mode", "status", "disabled", "mfa_required", "os_family"}
_STRING_FIELDS = [
    (spec, field)
    for spec in _VALID
    for field in spec.model_fields
    if field not in _NOT_FREE_STRINGS
]


def test_every_string_field_has_a_valid_value() -> None:
    for spec, field in _STRING_FIELDS:
        assert field in _VALID[spec], f"{spec.__name__}.{field} has no baseline value"


def _with_char(value: Any, char: str) -> Any:
    if isinstance(value, list):
        return [*value[:-1], value[-1] + char]
    if value.startswith("http://"):
        return f"{value}{char}x"
    return value + char


_CONTROL_CASES = [
    pytest.param(
        spec,
        field,
        char,
        id=f"{spec.__name__}.{field}-{ord(char):#04x}",
    )
    for spec, field in _STRING_FIELDS
    for char in ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f"]
]


@pytest.mark.parametrize(("spec", "field", "char"), _CONTROL_CASES)
def test_control_characters_refused(spec: type[BaseModel], field: str, char: str) -> None:
    base = _VALID[spec]
    spec.model_validate(base)  # the baseline is valid
    bad = base | {field: _with_char(base[field], char)}
    locs = [loc for loc, _ in errors(spec, **bad)]
    assert locs[0][0] == field


def test_text_length_limit() -> None:
    assert DepartmentSpec(name="d", description="x" * 500).description == "x" * 500
    assert [loc for loc, _ in errors(DepartmentSpec, name="d", description="x" * 501)] == [
        ("description",)
    ]


def test_plain_text_keeps_unicode() -> None:
    assert OfficeSpec(name="o", location="Zürich — 3rd floor").location == "Zürich — 3rd floor"


# --- app kinds -------------------------------------------------------------------------------


def test_http_app() -> None:
    app = AppSpec.model_validate(http_app(hostname="Wiki.Example.com"))
    assert app.kind is AppKind.HTTP
    assert app.hostname == "wiki.example.com"
    assert app.target == "http://wiki.internal:8080/"


def test_http_app_needs_hostname() -> None:
    fields = http_app()
    del fields["hostname"]
    [(loc, message)] = errors(AppSpec, **fields)
    assert loc == ()
    assert "needs a hostname" in message


def test_http_app_needs_url_target() -> None:
    [(loc, _)] = errors(AppSpec, **http_app(target="wiki.internal:8080"))
    assert loc == ("target",)


def test_tcp_app_needs_host_port() -> None:
    app = AppSpec(name="db", kind=AppKind.TCP, target="DB.internal:5432")
    assert app.target == "db.internal:5432"
    assert app.hostname is None
    [(loc, message)] = errors(AppSpec, name="db", kind="tcp", target="http://db.internal:5432")
    assert loc == ("target",)
    assert "not a valid host name" in message


def test_unknown_app_kind() -> None:
    locs = [loc for loc, _ in errors(AppSpec, **http_app(kind="udp"))]
    assert ("kind",) in locs


def test_app_tags() -> None:
    app = AppSpec.model_validate(http_app(tags=["team:wiki", "pii"]))
    assert app.tags == ["team:wiki", "pii"]
    assert [loc for loc, _ in errors(AppSpec, **http_app(tags=["Upper"]))] == [("tags", 0)]
    assert [loc for loc, _ in errors(AppSpec, **http_app(tags=["ok", "x\n"]))] == [("tags", 1)]


def test_duplicate_tags_refused() -> None:
    [(loc, message)] = errors(AppSpec, **http_app(tags=["pii", "web", "pii"]))
    assert loc == ()
    assert "tag 'pii' is listed twice" in message


def test_duplicate_groups_refused() -> None:
    [(loc, message)] = errors(UserSpec, username="u", groups=["a", "b", "a"])
    assert loc == ()
    assert "group 'a' is listed twice" in message


def test_device_os_family() -> None:
    assert DeviceSpec(name="d", os_family="linux").os_family == "linux"
    assert DeviceSpec(name="d").os_family == ""
    assert [loc for loc, _ in errors(DeviceSpec, name="d", os_family="beos")] == [("os_family",)]


def test_specs_are_frozen() -> None:
    group = GroupSpec(name="g")
    with pytest.raises(ValidationError):
        group.name = "h"  # type: ignore[misc]
