"""Method overrides (`core.http.overrides`): every spelling of `_method` that a framework reads,
in headers, queries and bodies, however the body is cut into reads."""

from __future__ import annotations

import gzip
import json
import zlib
from urllib.parse import unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerogate.core.http.overrides import (
    ANY,
    INFLATE_LIMIT,
    JSON_LIMIT,
    BodyScan,
    FormScan,
    JsonScan,
    MultipartScan,
    body_scan,
    method_overrides,
    parameter_name,
    query_overrides,
)

FORM = (b"content-type", b"application/x-www-form-urlencoded")


def read(scan: BodyScan, body: bytes, cuts: list[int] | None = None) -> list[str]:
    """All that `scan` finds in `body`, fed in pieces ending at `cuts`."""
    found: list[str] = []
    start = 0
    for cut in sorted(set(cuts or [])):
        found += scan.feed(body[start:cut])
        start = cut
    return found + scan.feed(body[start:]) + scan.finish()


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("_method", "_method"),
        (".method", "_method"),  # PHP: dots become underscores
        ("  .method", "_method"),  # PHP: leading spaces are dropped
        ("_method\x00tail", "_method"),  # PHP: the name ends at a NUL
        ("my method", "my_method"),
        ("method", "method"),
        ("_METHOD", "_METHOD"),  # names are case-sensitive everywhere
    ],
)
def test_parameter_names_are_read_as_php_registers_them(key: str, name: str) -> None:
    assert parameter_name(key) == name


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("", []),
        ("a=1&b=2", []),
        ("_method=delete", ["DELETE"]),
        ("a=1&_method=+put+", ["PUT"]),
        ("%5Fmethod=DELETE", ["DELETE"]),
        ("%5f%6d%65%74%68%6f%64=DELETE", ["DELETE"]),
        (".method=DELETE", ["DELETE"]),
        ("a=1;_method=PATCH", ["PATCH"]),
        ("_method=DELETE&_method=PUT", ["DELETE", "PUT"]),
        ("_method=", []),
        ("_method", []),
        ("method=DELETE", []),
        ("x=_method=DELETE", []),  # a value, not a key
        ("_method=" + "A" * 100, []),  # names no method
        ("%41" * 700 + "=1", [ANY]),  # a key no form has: anything, once read
        ("k" * 2000 + "=1", []),  # no escape and no "method": not read at all
    ],
)
def test_a_query_s_method_overrides(query: str, found: list[str]) -> None:
    assert query_overrides(query) == found


def test_the_head_s_overrides_are_each_named_once_and_never_post() -> None:
    headers = (
        (b"x-http-method-override", b" delete "),
        (b"x-http-method", b"DELETE"),
        (b"x-method-override", b"post"),
        (b"x-other", b"PUT"),
    )
    assert method_overrides(headers, "_method=patch") == ("DELETE", "PATCH")


@pytest.mark.parametrize(
    ("header", "found"),
    [
        # Express's method-override takes a list's first element; others may take another.
        ((b"x-http-method-override", b"DELETE, POST"), ("DELETE",)),
        ((b"x-http-method-override", b"post,put"), ("PUT",)),
        # Servers that pass headers on as CGI variables read "_" as "-".
        ((b"x_http_method_override", b"DELETE"), ("DELETE",)),
        ((b"x-http_method", b"PATCH"), ("PATCH",)),
        ((b"x-http-method-overrides", b"DELETE"), ()),
    ],
)
def test_an_override_header_is_read_in_each_spelling(
    header: tuple[bytes, bytes], found: tuple[str, ...]
) -> None:
    assert method_overrides((header,), "") == found


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ((), FormScan),  # Rack reads a POST without a type as a form
        ((FORM,), FormScan),
        (((b"content-type", b"Application/X-WWW-Form-URLEncoded; charset=UTF-8"),), FormScan),
        (((b"content-type", b"multipart/form-data; boundary=abc"),), MultipartScan),
        (((b"content-type", b'multipart/mixed; boundary="a b"'),), MultipartScan),
        (((b"content-type", b"application/json"),), JsonScan),
        (((b"content-type", b"application/vnd.api+json; charset=utf-8"),), JsonScan),
        (((b"content-type", b"multipart/form-data"),), type(None)),  # no boundary: no fields
        # The type as the most lenient readers find it: Rack cuts it at "," too, PHP at a
        # space; an empty type is none (a form, to Rack); Laravel finds "/json" anywhere;
        # Rack finds "boundary=" anywhere.
        (((b"content-type", b"application/x-www-form-urlencoded, text/plain"),), FormScan),
        (((b"content-type", b"application/x-www-form-urlencoded text/plain"),), FormScan),
        (((b"content-type", b""),), FormScan),
        (((b"content-type", b"text/plain; x=/json"),), JsonScan),
        (((b"content-type", b"multipart/form-data; xboundary=abc"),), MultipartScan),
        (((b"content-type", b"text/plain"),), type(None)),
        (((b"content-type", b"application/octet-stream"),), type(None)),
    ],
)
def test_a_body_is_read_by_its_type(headers: tuple[tuple[bytes, bytes], ...], kind: type) -> None:
    assert type(body_scan(headers)) is kind


def test_a_body_with_two_types_is_read_as_each() -> None:
    scan = body_scan(((b"content-type", b"text/plain"), FORM, (b"content-type", b"text/csv")))
    assert scan is not None
    assert read(scan, b'{"_method": "PUT"}') == []
    both = body_scan((FORM, (b"content-type", b"application/json")))
    assert both is not None
    assert read(both, b'{"_method": "PUT"}') == ["PUT"]


_KEYS = st.sampled_from(["title", "_method", "%5Fmethod", ".method", "a[b]", "method", "x y"])
_VALUES = st.sampled_from(["", "x", "DELETE", "put", "a%26b", "=", "hello+world"])


@given(
    pairs=st.lists(st.tuples(_KEYS, _VALUES), max_size=8),
    separators=st.lists(st.sampled_from(["&", ";"]), min_size=8, max_size=8),
    cuts=st.lists(st.integers(0, 200), max_size=12),
)
def test_a_form_gives_the_same_methods_however_it_is_cut(
    pairs: list[tuple[str, str]], separators: list[str], cuts: list[int]
) -> None:
    joined = zip(pairs, ["", *separators], strict=False)  # split at "&" and ";" alike
    body = "".join(f"{separator}{key}={value}" for (key, value), separator in joined)
    wanted = ("_method", "%5Fmethod", ".method")
    readings = [unquote_plus(value).strip().upper() for key, value in pairs if key in wanted]
    expected = [method for method in readings if method]
    assert read(FormScan(), body.encode(), cuts) == expected
    assert read(FormScan(), body.encode()) == expected


def _multipart(fields: list[tuple[str, bytes]], boundary: bytes = b"zg-boundary") -> bytes:
    parts = [
        b"--%b\r\ncontent-disposition: form-data; %b\r\n\r\n%b\r\n"
        % (boundary, head.encode(), data)
        for head, data in fields
    ]
    return b"".join(parts) + b"--%b--\r\n" % boundary


@pytest.mark.parametrize(
    ("disposition", "found"),
    [
        ('name="_method"', ["DELETE"]),
        ("name=_method", ["DELETE"]),
        ('NAME="_method"', ["DELETE"]),
        ('name=".method"', ["DELETE"]),
        ("name*=utf-8''%5Fmethod", ["DELETE"]),
        ('filename="x"; name="_method"', ["DELETE"]),
        ('name="title"', []),
        ('filename="_method"', []),
    ],
)
def test_a_multipart_field_s_name_is_read_in_each_spelling(
    disposition: str, found: list[str]
) -> None:
    body = _multipart([('name="a"', b"1"), (disposition, b"delete")])
    assert read(MultipartScan(b"zg-boundary"), body) == found


@given(cuts=st.lists(st.integers(0, 400), max_size=20))
def test_a_multipart_body_gives_the_same_methods_however_it_is_cut(cuts: list[int]) -> None:
    body = _multipart(
        [('name="file"; filename="f.bin"', b"\r\n--zg-bound" * 5), ('name="_method"', b"PUT")]
    )
    assert read(MultipartScan(b"zg-boundary"), body, cuts) == ["PUT"]


def test_a_multipart_type_naming_two_boundaries_is_read_with_each() -> None:
    """Readers disagree on which of two boundaries counts (Rack takes the last, PHP the
    first): the body is read with each, and the one it was not cut by cannot read it."""
    scan = body_scan(
        ((b"content-type", b"multipart/form-data; xboundary=a; boundary=zg-boundary"),)
    )
    assert scan is not None
    assert sorted(read(scan, _multipart([('name="_method"', b"DELETE")]))) == sorted(
        ["DELETE", ANY]
    )


def test_a_multipart_body_that_does_not_parse_or_end_may_be_anything() -> None:
    body = _multipart([('name="_method"', b"PUT")])
    assert read(MultipartScan(b"zg-boundary"), body[:-20]) == [ANY]  # cut before its end
    assert read(MultipartScan(b"zg-boundary"), b"garbage without a boundary") == [ANY]
    too_many = b"--zg-boundary\r\n" + b"x-h: 1\r\n" * 20 + b"\r\nx\r\n--zg-boundary--\r\n"
    assert read(MultipartScan(b"zg-boundary"), too_many) == [ANY]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        (b'{"_method": "delete"}', ["DELETE"]),
        (b'{"\\u005fmethod": "DELETE"}', ["DELETE"]),
        (b'{"_method": "PUT", "_method": "DELETE"}', ["PUT", "DELETE"]),
        (b'{"a": [{"_method": "PATCH"}]}', ["PATCH"]),
        (b'{"big": 123456789012345678901234567890, "n": NaN, "_method": "DELETE"}', ["DELETE"]),
        (b'{"_method": 5}', []),
        (b'{"method": "DELETE"}', []),
        (b"not json, _method=DELETE", []),
        (b"[" * 100_000 + b"]" * 100_000, [ANY]),  # deeper than this reader goes
    ],
)
def test_a_json_body_s_method(body: bytes, found: list[str]) -> None:
    assert read(JsonScan(), body, [3, 10]) == found


def test_a_json_body_over_the_limit_may_be_anything() -> None:
    body = json.dumps({"pad": "x" * JSON_LIMIT}).encode()
    assert read(JsonScan(), body, [JSON_LIMIT // 2]) == [ANY]


def _compressed(coding: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return (FORM, (b"content-encoding", coding))


@given(cuts=st.lists(st.integers(0, 60), max_size=8))
def test_a_compressed_form_is_read_as_it_inflates(cuts: list[int]) -> None:
    """Express's body-parser inflates a gzip or deflate body before its method-override
    reads `_method`: the gateway reads it inflated too, however it arrives cut."""
    form = b"title=x&_method=DELETE"
    for coding, body in ((b"gzip", gzip.compress(form)), (b"deflate", zlib.compress(form))):
        scan = body_scan(_compressed(coding))
        assert scan is not None
        assert read(scan, body, cuts) == ["DELETE"]
    identity = body_scan(_compressed(b"identity"))
    assert isinstance(identity, FormScan)


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        (b"br", b"\x0b\x0b\x80_method=DELETE\x03"),  # not read here; an app may read it
        (b"gzip, gzip", gzip.compress(gzip.compress(b"_method=DELETE"))),
        (b"gzip", b"not gzip at all"),
        (b"gzip", gzip.compress(b"_method=DELETE")[:-6]),  # stops before its end
        (b"gzip", gzip.compress(b"a=1") + gzip.compress(b"_method=DELETE")),  # two members
        (b"gzip", gzip.compress(b"a=" + b"0" * INFLATE_LIMIT)),  # inflates past the limit
    ],
    ids=["brotli", "stacked", "corrupt", "truncated", "two-members", "bomb"],
)
def test_a_compressed_body_that_is_not_read_whole_may_be_anything(
    coding: bytes, body: bytes
) -> None:
    scan = body_scan(_compressed(coding))
    assert scan is not None
    assert ANY in read(scan, body)
