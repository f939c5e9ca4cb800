"""The password policy for local accounts (NIST SP 800-63B §5.1.1.2 in spirit).

Length over composition rules: at least 12 characters, at most 256 (argon2 takes any length,
but a cap stops a megabyte "password" from being a denial of service), not the username,
not a well-known password. Pure: the caller hashes with argon2id.
"""

from __future__ import annotations

MIN_LENGTH = 12
MAX_LENGTH = 256
# A short list of the passwords attackers try first; a fuller list can be loaded later.
_COMMON = frozenset(
    {
        "password1234",
        "123456789012",
        "qwertyuiopas",
        "passwordpassword",
        "letmein12345",
        "administrator",
        "changeme1234",
        "welcome12345",
        "zerogate1234",
        "iloveyou1234",
        "111111111111",
        "000000000000",
        "abcdefghijkl",
        "qwerty123456",
        "password123!",
    }
)


class PasswordRejected(ValueError):
    """Why a new password does not meet the policy; safe to show to its owner."""


def check_new_password(password: str, *, username: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"use at most {MAX_LENGTH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        raise PasswordRejected("control characters are not allowed")
    lowered = password.lower()
    if lowered == username.lower() or (username.lower() in lowered and len(username) >= 4):
        raise PasswordRejected("do not use your username in your password")
    if lowered in _COMMON or len(set(password)) < 4:
        raise PasswordRejected("this password is too easy to guess")
