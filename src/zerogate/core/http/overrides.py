"""Method overrides: where a POST asks its app to run it as another method.

Frameworks let a POST stand for PUT, PATCH or DELETE, because an HTML form can only send GET
and POST. A policy that allows POST but denies DELETE must therefore also hold for a POST
that its app will run as a DELETE. The places they read are:

- headers: `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override` (Express's
  method-override, ASP.NET Core, Google's APIs), also spelt with `_` (servers that pass
  headers on as CGI variables read `X_HTTP_Method_Override` as the same one), each element
  of a list (Express takes the first: `DELETE, POST` is a DELETE);
- the `_method` query parameter (Symfony and Laravel; Express when configured so);
- the `_method` field of the body (Rails' Rack::MethodOverride reads only the body; Symfony
  and Laravel read it before the query): urlencoded or multipart form data, and JSON, which
  Laravel reads as its request's fields.

Names are read the way the most lenient of these readers reads them. The key is
percent-decoded once (`%5Fmethod`), `+` and spaces are spaces, and then read as PHP reads it.
PHP drops leading spaces, turns spaces and dots into underscores (` method` and `.method`
are `_method`), and ends the name at a NUL byte. Pairs are split at `&` and at `;` (Rack 2).

Only POST is ever overridden. A body is read as it streams by (`BodyScan`), never buffered,
except JSON, which is read whole up to `JSON_LIMIT`. A body sent gzip- or zlib-compressed
(`Content-Encoding`), which Express's body-parser inflates, is read as it inflates, up to
`INFLATE_LIMIT`. Whatever cannot be read with certainty gives `ANY`: the request may stand
for any method (a key longer than any form has, a multipart body that does not parse, JSON
over the limit or nested too deep, a body that does not inflate or inflates to more than
the limit, a coding other than gzip and deflate).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import unquote_plus

from python_multipart.multipart import MultipartParser, MultipartState

Headers = tuple[tuple[bytes, bytes], ...]

OVERRIDE_HEADERS = frozenset({b"x-http-method-override", b"x-http-method", b"x-method-override"})
PARAMETER = "_method"
ANY = "*"  # the request may stand for any method: decide it as the strictest of them all
JSON_LIMIT = 1 << 20  # bytes of a JSON body read to find its `_method`; more is ANY
INFLATE_LIMIT = 8 << 20  # bytes a compressed body is inflated to; more is ANY
_MAX_NAME = 1024  # bytes of a form key or a multipart part's headers; no form has longer
_MAX_VALUE = 64  # bytes of a `_method` value; a longer one names no method


def parameter_name(raw: str) -> str:
    """A decoded form or query key as PHP registers it (`php_register_variable_ex`)."""
    name = raw.partition("\x00")[0].lstrip(" ")
    return name.replace(" ", "_").replace(".", "_")


def _method(raw: str) -> str | None:
    method = raw.strip().upper()
    return method or None


def header_overrides(headers: Headers) -> list[str]:
    found = []
    for name, value in headers:
        if name.replace(b"_", b"-") in OVERRIDE_HEADERS:
            for element in value.decode("latin-1").split(","):
                method = _method(element)
                if method is not None:
                    found.append(method)
    return found


def query_overrides(query: str) -> list[str]:
    # Every spelling of the name holds "method" or a percent-escape: the rest is not read.
    if "method" not in query and "%" not in query:
        return []
    scan = FormScan()
    return scan.feed(query.encode("latin-1")) + scan.finish()


def method_overrides(headers: Headers, query: str) -> tuple[str, ...]:
    """The other methods a POST's head asks its app to run it as, upper case, each once."""
    found = header_overrides(headers) + query_overrides(query)
    return tuple(m for m in dict.fromkeys(found) if m != "POST")


class BodyScan(Protocol):
    """Reads a request body as it streams by; each call gives the methods found in it."""

    def feed(self, chunk: bytes) -> list[str]: ...

    def finish(self) -> list[str]: ...


def body_scan(headers: Headers) -> BodyScan | None:
    """A reader for the `_method` of a body with these headers, or None if no framework
    reads one from a body of its type."""
    types = [value for name, value in headers if name == b"content-type"]
    if not types:
        return FormScan()  # Rack reads a POST without a type as a form
    scans = [scan for content_type in types for scan in _scans_for(content_type)]
    if not scans:
        return None
    scan = scans[0] if len(scans) == 1 else _Each(scans)
    codings = [
        coding.strip(b" \t").lower()
        for name, value in headers
        if name == b"content-encoding"
        for coding in value.split(b",")
    ]
    codings = [coding for coding in codings if coding not in (b"", b"identity")]
    if not codings:
        return scan
    if codings in ([b"gzip"], [b"x-gzip"], [b"deflate"]):
        return _Inflating(scan)
    return _Unreadable()  # brotli, or codings stacked: not read here, though an app may


def _scans_for(content_type: bytes) -> list[BodyScan]:
    """A reader for each way a framework may read a body of this type. They find the type
    differently, so the header is read the way each of the most lenient ones reads it:
    Rack cuts the media type at `;` or `,`, PHP at `;`, `,` or a space, and an empty type is
    no type (a form, to Rack); Rack finds `boundary=` anywhere after `multipart/`, and
    PHP and python-multipart each find their own; Laravel takes a body for JSON when
    `/json` or `+json` is anywhere in the header. A reading no framework makes costs only
    a stricter decision for a request whose header is ambiguous."""
    text = content_type.decode("latin-1")
    lowered = text.lower()
    scans: list[BodyScan] = []
    if not lowered.strip(" \t;,") or "application/x-www-form-urlencoded" in lowered:
        scans.append(FormScan())
    if "multipart/" in lowered:
        # A boundary that is not the body's makes its reader fail: ANY, the strictest.
        scans += [MultipartScan(boundary) for boundary in _boundaries(text)]
    if "/json" in lowered or "+json" in lowered:
        scans.append(JsonScan())
    return scans


def _boundaries(text: str) -> list[bytes]:
    """Every boundary a multipart reader may take from a Content-Type (none: no reader can
    split the body into fields either)."""
    found = [quoted.replace('\\"', '"') for quoted in _QUOTED_BOUNDARY.findall(text)]
    found += _BARE_BOUNDARY.findall(text) + [rack.strip() for rack in _RACK_BOUNDARY.findall(text)]
    return [value.encode("latin-1") for value in dict.fromkeys(found) if value]


_QUOTED_BOUNDARY = re.compile(r'boundary\s*=\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)
_BARE_BOUNDARY = re.compile(r'boundary\s*=\s*([^;,\s"]+)', re.IGNORECASE)
_RACK_BOUNDARY = re.compile(r'boundary="?([^";,]+)"?', re.IGNORECASE)  # Rack's own reading


class _Each:
    """Several Content-Type headers: the body is read as each of them."""

    def __init__(self, scans: Iterable[BodyScan]) -> None:
        self.scans = list(scans)

    def feed(self, chunk: bytes) -> list[str]:
        return [method for scan in self.scans for method in scan.feed(chunk)]

    def finish(self) -> list[str]:
        return [method for scan in self.scans for method in scan.finish()]


class _Unreadable:
    """A body this reader cannot read, though an app may: it may stand for any method."""

    def feed(self, chunk: bytes) -> list[str]:
        return []

    def finish(self) -> list[str]:
        return [ANY]


class _Inflating:
    """A gzip or zlib body (`deflate` in HTTP is zlib's format), read by `inner` as it
    inflates. Raw deflate, which some clients send as `deflate`, does not inflate here:
    ANY, like a body that inflates to more than `INFLATE_LIMIT` or stops before its end."""

    def __init__(self, inner: BodyScan) -> None:
        self._inner = inner
        self._inflater = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or a zlib header
        self._inflated = 0
        self._broken = False

    def feed(self, chunk: bytes) -> list[str]:
        if self._broken:
            return []
        try:
            data = self._inflater.decompress(chunk, INFLATE_LIMIT - self._inflated + 1)
        except zlib.error:
            return self._fail()
        self._inflated += len(data)
        if self._inflated > INFLATE_LIMIT or self._inflater.unconsumed_tail:
            return self._fail()
        if self._inflater.unused_data:  # a second gzip member, which Node inflates as well
            return self._fail()
        return self._inner.feed(data)

    def finish(self) -> list[str]:
        if self._broken:
            return []
        if not self._inflater.eof:
            return self._fail()
        return self._inner.finish()

    def _fail(self) -> list[str]:
        self._broken = True
        return [ANY]


_PAIR_END = re.compile(rb"[&;]")
_KEY_END = re.compile(rb"[&;=]")


class FormScan:
    """`application/x-www-form-urlencoded` (and a query): `key=value` pairs."""

    def __init__(self) -> None:
        self._text = bytearray()  # the key being read, or the `_method` value being read
        self._in_value = False
        self._wanted = False  # the value being read is a `_method`'s
        self._found: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        position, size = 0, len(chunk)
        while position < size:
            if self._in_value and not self._wanted:  # skip the value: only its end matters
                end = _PAIR_END.search(chunk, position)
                if end is None:
                    break
                self._in_value = False
                position = end.end()
                continue
            end = (_PAIR_END if self._in_value else _KEY_END).search(chunk, position)
            stop = size if end is None else end.start()
            self._text += chunk[position:stop]
            if len(self._text) > (_MAX_VALUE if self._in_value else _MAX_NAME):
                self._overlong()
                position = stop
                continue
            if end is None:
                break
            self._ended(end.group())
            position = end.end()
        return self._take()

    def finish(self) -> list[str]:
        if self._in_value and self._wanted:
            self._value_read()
        self._text.clear()
        return self._take()

    def _overlong(self) -> None:
        if not self._in_value:
            self._found.append(ANY)  # a key this long could be anything once PHP reads it
        self._text.clear()
        self._in_value, self._wanted = True, False  # skip the rest of this pair

    def _ended(self, separator: bytes) -> None:
        if self._in_value:
            self._value_read()
            self._in_value = self._wanted = False
        elif separator == b"=":
            key = unquote_plus(self._text.decode("latin-1"), encoding="latin-1")
            self._in_value, self._wanted = True, parameter_name(key) == PARAMETER
        self._text.clear()

    def _value_read(self) -> None:
        method = _method(unquote_plus(self._text.decode("latin-1"), encoding="latin-1"))
        if method is not None:
            self._found.append(method)

    def _take(self) -> list[str]:
        found, self._found = self._found, []
        return found


# A part's field name, as any of the multipart readers finds it: `name=` quoted or not, or
# RFC 2231's `name*=charset'lang'percent-encoded` (RFC 7578 forbids it; some readers take it).
_ENDED = frozenset({MultipartState.END})
_PART_NAME = re.compile(
    r'(?:^|[;\s])name(\*?)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))', re.IGNORECASE
)


class MultipartScan:
    """`multipart/form-data` (and the other multipart types Rack reads), parsed as it streams
    by with python-multipart (Starlette's parser)."""

    def __init__(self, boundary: bytes) -> None:
        self._found: list[str] = []
        self._field = bytearray()
        self._value = bytearray()
        self._headers = 0  # bytes of the part's headers so far
        self._disposition = False  # the header being read is Content-Disposition
        self._wanted = False  # this part is a `_method` field
        self._data = bytearray()
        self._broken = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def feed(self, chunk: bytes) -> list[str]:
        if not self._broken:
            try:
                self._parser.write(chunk)
            except Exception:  # any parse error: this reader cannot be followed
                self._broken = True
                self._found.append(ANY)
        found, self._found = self._found, []
        return found

    def finish(self) -> list[str]:
        if not self._broken and self._parser.state not in _ENDED:
            # The body stopped before its closing boundary: what a reader makes of an
            # unfinished part is not certain.
            self._found.append(ANY)
        found, self._found = self._found, []
        return found

    def _part_begin(self) -> None:
        self._headers, self._wanted = 0, False
        self._data.clear()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]
        self._grown(end - start)

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]
        self._grown(end - start)

    def _grown(self, size: int) -> None:
        self._headers += size
        if self._headers > _MAX_NAME:
            raise ValueError("part headers too long")

    def _header_end(self) -> None:
        if self._field.strip().lower() == b"content-disposition":
            names = _PART_NAME.findall(self._value.decode("latin-1"))
            self._wanted = self._wanted or any(_is_parameter(*name) for name in names)
        self._field.clear()
        self._value.clear()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._wanted and len(self._data) <= _MAX_VALUE:
            self._data += data[start : min(end, start + _MAX_VALUE + 1)]

    def _part_end(self) -> None:
        if self._wanted and len(self._data) <= _MAX_VALUE:
            method = _method(self._data.decode("latin-1"))
            if method is not None:
                self._found.append(method)
        self._wanted = False


def _is_parameter(extended: str, quoted: str, bare: str) -> bool:
    text = quoted or bare
    readings = {text, text.replace('\\"', '"').replace("\\\\", "\\")}
    if extended:
        readings.add(unquote_plus(text.rpartition("'")[2], encoding="latin-1"))
    return any(parameter_name(reading) == PARAMETER for reading in readings)


class JsonScan:
    """A JSON body (Laravel's request fields): read whole, up to `JSON_LIMIT`. Every
    `_method` string counts: each one of a repeated key (readers differ in which they keep)
    and one at any depth (Laravel reads only the top level's, but that is no reason to read
    less)."""

    def __init__(self) -> None:
        self._body = bytearray()
        self._overlong = False

    def feed(self, chunk: bytes) -> list[str]:
        if not self._overlong:
            self._body += chunk
            if len(self._body) > JSON_LIMIT:
                self._overlong = True
                self._body = bytearray()
                return [ANY]
        return []

    def finish(self) -> list[str]:
        if self._overlong:
            return []
        found: list[str] = []

        def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
            for key, value in items:
                if key == PARAMETER and isinstance(value, str):
                    method = _method(value)
                    if method is not None:
                        found.append(method)
            return dict(items)

        try:
            # Python's reader is as lenient as the lenient ones: big integers, NaN.
            json.loads(self._body, object_pairs_hook=pairs)
        except RecursionError:
            return [ANY]  # nested deeper than this reader goes: another may go deeper
        except ValueError:
            return []  # not JSON to anyone: no field in it is read
        return found
