"""The key-encryption key: from ZEROGATE_CA_KEY or a private key file, never echoed."""

from __future__ import annotations

import base64
import stat
import threading
from pathlib import Path

import pytest

from zerogate.pki import PkiError, load_or_create_kek

RAW = bytes([0xFB, 0xEF, 0xFF]) * 12  # 36 bytes whose base64 needs '+' and '/'


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (base64.b64encode(RAW).decode(), RAW),
        (base64.urlsafe_b64encode(RAW).decode(), RAW),
        (base64.urlsafe_b64encode(RAW[:32]).decode().rstrip("=") + "\n", RAW[:32]),
    ],
    ids=["standard", "urlsafe", "unpadded-with-newline"],
)
def test_environment_value_is_decoded_and_no_file_is_made(
    tmp_path: Path, value: str, expected: bytes
) -> None:
    key_file = tmp_path / "kek"
    assert load_or_create_kek(env_value=value, key_file=key_file) == expected
    assert not key_file.exists()


SECRETISH = "c2VjcmV0LXZhbHVl"  # base64 of "secret-value": valid but far too short


@pytest.mark.parametrize(
    "value",
    [SECRETISH, "not*base64*at*all*secret", base64.b64encode(bytes(31)).decode(), "Zm9v=Zm9v", " "],
)
def test_bad_environment_value_names_the_variable_but_not_the_value(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(PkiError, match="ZEROGATE_CA_KEY") as caught:
        load_or_create_kek(env_value=value, key_file=tmp_path / "kek")
    message = str(caught.value)
    assert (value.strip() not in message) or not value.strip()
    error = caught.value  # no chained exception may carry the value into a traceback
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert not (tmp_path / "kek").exists()  # no silent fallback to a file


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "fresh" / "ca" / "kek"
    first = load_or_create_kek(env_value=None, key_file=key_file)
    assert len(first) == 32
    assert mode(key_file) == 0o600
    assert mode(key_file.parent) == 0o700
    assert base64.b64decode(key_file.read_text()) == first
    assert load_or_create_kek(env_value=None, key_file=key_file) == first
    assert [p.name for p in key_file.parent.iterdir()] == ["kek"]  # no temporary left behind


def test_environment_wins_over_an_existing_file(tmp_path: Path) -> None:
    key_file = tmp_path / "kek"
    from_file = load_or_create_kek(env_value=None, key_file=key_file)
    from_env = load_or_create_kek(env_value=base64.b64encode(RAW).decode(), key_file=key_file)
    assert from_env == RAW != from_file


@pytest.mark.parametrize(
    ("file_mode", "word"), [(0o644, "readable"), (0o640, "readable"), (0o620, "writable")]
)
def test_key_file_open_to_others_is_refused(tmp_path: Path, file_mode: int, word: str) -> None:
    key_file = tmp_path / "kek"
    key_file.write_text(base64.b64encode(RAW).decode())
    key_file.chmod(file_mode)
    with pytest.raises(PkiError, match=rf"must not be {word} by group or others \(chmod 600\)"):
        load_or_create_kek(env_value=None, key_file=key_file)


def test_broken_key_file_is_refused_without_echo(tmp_path: Path) -> None:
    key_file = tmp_path / "kek"
    key_file.write_bytes(b"c2hvcnQ=\n")  # "short"
    key_file.chmod(0o600)
    with pytest.raises(PkiError, match=r"key file .* at least 32") as caught:
        load_or_create_kek(env_value=None, key_file=key_file)
    assert "c2hvcnQ" not in str(caught.value)
    key_file.write_bytes(b"\xff\xfe")
    with pytest.raises(PkiError, match="not valid base64"):
        load_or_create_kek(env_value=None, key_file=key_file)


def test_racing_starts_agree_on_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "ca" / "kek"
    results: list[bytes] = []
    lock = threading.Lock()

    def start() -> None:
        value = load_or_create_kek(env_value=None, key_file=key_file)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 8 and len(set(results)) == 1
    assert base64.b64decode(key_file.read_text()) == results[0]
