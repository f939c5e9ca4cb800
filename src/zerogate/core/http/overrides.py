"""Method overrides: where a POST asks its app to run it as another method.

Frameworks let a POST stand for PUT, PATCH or DELETE, because an HTML form can only send GET
and POST. A policy that allows POST but denies DELETE must therefore also hold for a POST
that its app will run as a DELETE. The places they read are:

- headers: `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override` (Express's
  method-override, ASP.NET Core, Google's APIs);
- the `_method` query parameter (Symfony and Laravel; Express when configured so);
- the `_method` field of the body (Rails' Rack::MethodOverride reads only the body; Symfony
  and Laravel read it before the query): urlencoded or multipart form data, and JSON, which
  Laravel reads as its request's fields.

Names are read the way the most lenient of these readers reads them. The key is
percent-decoded once (`%5Fmethod`), `+` and spaces are spaces, and then read as PHP reads it.
PHP drops leading spaces, turns spaces and dots into underscores (` method` and `.method`
are `_method`), and ends the name at a NUL byte. Pairs are split at `&` and at `;` (Rack 2).

Only POST is ever overridden. A body is read as it streams by (`BodyScan`), never buffered,
except JSON, which is read whole up to `JSON_LIMIT`. Whatever cannot be read with certainty
gives `ANY`: the request may stand for any method (a key longer than any form has, a
multipart body that does not parse, JSON over the limit or nested too deep).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Protocol
from urllib.parse import unquote_plus

from python_multipart.multipart import MultipartParser, MultipartState

Headers = tuple[tuple[bytes, bytes], ...]

OVERRIDE_HEADERS = frozenset({b"x-http-method-override", b"x-http-method", b"x-method-override"})
PARAMETER = "_method"
ANY = "*"  # the request may stand for any method: decide it as the strictest of them all
JSON_LIMIT = 1 << 20  # bytes of a JSON body read to find its `_method`; more is ANY
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
        if name in OVERRIDE_HEADERS:
            method = _method(value.decode("latin-1"))
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
    scans = [scan for scan in map(_scan_for, types) if scan is not None]
    if not scans:
        return None
    return scans[0] if len(scans) == 1 else _Each(scans)


def _scan_for(content_type: bytes) -> BodyScan | None:
    text = content_type.decode("latin-1")
    media = text.partition(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return FormScan()
    if media.startswith("multipart/"):
        boundary = _BOUNDARY.search(text)
        if boundary is None:
            return None  # no reader can split it into fields either
        value = boundary.group(1) or boundary.group(2)
        return MultipartScan(value.replace('\\"', '"').encode("latin-1"))
    if "/json" in media or "+json" in media:  # Laravel's test for a JSON request
        return JsonScan()
    return None


_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', re.IGNORECASE)


class _Each:
    """Several Content-Type headers: the body is read as each of them."""

    def __init__(self, scans: Iterable[BodyScan]) -> None:
        self.scans = list(scans)

    def feed(self, chunk: bytes) -> list[str]:
        return [method for scan in self.scans for method in scan.feed(chunk)]

    def finish(self) -> list[str]:
        return [method for scan in self.scans for method in scan.finish()]


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
