"""Claim mapping: an identity provider's claims become zerogate groups, department and office.

Place in the flow: login portal → OIDC relying party (control/portal/oidc.py) verifies the ID
token and userinfo → **this module** turns their claims into the attributes policies are
written against → the portal creates or updates the user and the session.

Theory of operation: first the provider's own group names are copied from one claim (usually
`groups`), keeping only values that are valid zerogate names; then every rule is tried in
order. A rule matches when its claim has a value equal to `equals` and/or ending with
`suffix`; a matching rule adds its groups and may set department and office.

Invariants:
1. Pure and total: any claims mapping (arbitrary JSON from a provider) gives a result; nothing
   here raises on provider data. Only a badly written rule raises, when it is constructed.
2. Groups accumulate: the result is their deduplicated, sorted union, so the same claims always
   give the same tuple.
3. For department and office the last matching rule that sets one wins, so operators write
   general rules first and exceptions after them.
4. Comparisons are exact and case-sensitive: a provider spelling a value differently fails
   closed (no group) rather than open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from zerogate.core.inventory.names import NAME_PATTERN

# fullmatch, not match: NAME_PATTERN ends in `$`, which `match` also accepts before a final "\n".
_NAME = re.compile(NAME_PATTERN)


def _is_name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class ClaimRule:
    """When `claim` matches, add `add_groups` and set `department`/`office` (if given).

    `equals` matches a string value exactly (for a list claim: any element); `suffix` matches
    a string value ending with it, e.g. "@example.com". With both, both must hold; at least
    one is required, and `suffix=""` deliberately matches any string value. Booleans and
    integers compare in their JSON spelling, so `email_verified` equals "true".
    """

    claim: str
    equals: str | None = None
    suffix: str | None = None
    add_groups: tuple[str, ...] = ()
    department: str | None = None
    office: str | None = None

    def __post_init__(self) -> None:
        # A rule without a condition would match everybody: a typo must not grant a group.
        if not self.claim:
            raise ValueError("a claim rule needs a claim name")
        if self.equals is None and self.suffix is None:
            raise ValueError(f"claim rule on {self.claim!r} needs `equals` or `suffix`")
        for target in (*self.add_groups, self.department, self.office):
            if target is not None and not _is_name(target):
                raise ValueError(f"claim rule on {self.claim!r}: {target!r} is not a valid name")

    def matches(self, claims: Mapping[str, object]) -> bool:
        return any(self._matches_value(value) for value in _string_values(claims.get(self.claim)))

    def _matches_value(self, value: str) -> bool:
        if self.equals is not None and value != self.equals:
            return False
        return self.suffix is None or value.endswith(self.suffix)


@dataclass(frozen=True, slots=True)
class MappedIdentity:
    groups: tuple[str, ...]
    department: str | None
    office: str | None


def map_claims(
    claims: Mapping[str, object],
    rules: Sequence[ClaimRule],
    *,
    copy_groups_claim: str | None = "groups",
) -> MappedIdentity:
    """Apply `rules` in order to verified claims; see the module docstring for the semantics."""
    groups: set[str] = set()
    if copy_groups_claim is not None:
        # Provider group names such as "Domain Users" are not valid zerogate names: drop them
        # rather than mangle them into a name that might collide with a real group.
        groups.update(v for v in _list_values(claims.get(copy_groups_claim)) if _is_name(v))
    department: str | None = None
    office: str | None = None
    for rule in rules:
        if not rule.matches(claims):
            continue
        groups.update(rule.add_groups)
        if rule.department is not None:
            department = rule.department
        if rule.office is not None:
            office = rule.office
    return MappedIdentity(groups=tuple(sorted(groups)), department=department, office=office)


def _list_values(value: object) -> Iterator[object]:
    # Some providers send a lone string instead of a one-element array.
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        yield from value


def _string_values(value: object) -> Iterator[str]:
    items = value if isinstance(value, list | tuple) else (value,)
    for item in items:
        text = _scalar_text(item)
        if text is not None:
            yield text


def _scalar_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    # An int too long for str() (CPython's 4300-digit limit) cannot equal a sensible rule value.
    if isinstance(value, int) and -(10**64) < value < 10**64:
        return str(value)
    return None
