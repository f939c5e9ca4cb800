"""A user's fields while SCIM changes land on them: SCIM attributes in, inventory fields out.

Where it sits: `patch` flattens a POST, PUT or PATCH body into changes → this module applies
them to a `UserDraft` → `users` hands the draft's fields to `provision`, which writes them
through the inventory. One table, `_SETTERS`, says which SCIM attribute sets which field.

zerogate keeps one display name and no separate name parts. Within a request displayName
wins over name.formatted, which wins over the parts; a PATCH naming only one part keeps the
other from the current display name, split at its last space. Of the e-mail addresses, the
primary one (else the first) is kept; in paths, `emails[type eq "work"]` and
`emails[primary eq true]` select it, other types are left alone. Core attributes zerogate
does not keep (title, phoneNumbers, …) and extension attributes are accepted and ignored;
names outside the core schema are refused, so a mistyped mapping fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from zerogate.control.scim.errors import ScimType, bad
from zerogate.control.scim.filters import Equals, Filter
from zerogate.control.scim.patch import (
    Change,
    Op,
    as_bool,
    as_text,
    sub_changes,
    unknown_target,
)
from zerogate.store.models import User

# Core attributes (RFC 7643 §4.1) zerogate does not keep, and read-only ones it computes.
_IGNORED = frozenset(
    {
        "id", "meta", "schemas", "groups", "nickname", "profileurl", "title", "usertype",
        "preferredlanguage", "locale", "timezone", "password", "phonenumbers", "ims",
        "photos", "addresses", "entitlements", "roles", "x509certificates",
    }
)  # fmt: skip
_IGNORED_SUBS = frozenset(
    {
        ("name", "middlename"), ("name", "honorificprefix"), ("name", "honorificsuffix"),
        ("emails", "type"), ("emails", "primary"), ("emails", "display"),
    }
)  # fmt: skip


@dataclass(slots=True)
class UserDraft:
    """A user's SCIM-writable fields while one request's changes are applied to them."""

    username: str
    display_name: str
    email: str | None
    active: bool
    external_id: str | None
    display: str | None = None  # displayName, when this request sets it
    formatted: str | None = None  # name.formatted, when this request sets it
    parts: dict[str, str] = field(default_factory=dict)  # name.givenName/familyName set here

    @classmethod
    def of(cls, user: User) -> UserDraft:
        return cls(
            user.username, user.display_name, user.email, not user.disabled, user.external_id
        )

    @classmethod
    def blank(cls) -> UserDraft:
        return cls("", "", None, True, None)

    def fields(self, *, keep_parts: bool) -> dict[str, object]:
        """The inventory fields; `keep_parts` (PATCH) fills a missing name part from before."""
        return {
            "username": self.username,
            "display_name": self._display_name(keep_parts),
            "email": self.email,
            "disabled": not self.active,
        }

    def _display_name(self, keep_parts: bool) -> str:
        if self.display is not None:
            return self.display
        if self.formatted is not None:
            return self.formatted
        if not self.parts:
            return self.display_name
        words = self.display_name.rsplit(" ", 1) if keep_parts else []
        given = self.parts.get("givenname", words[0] if words else "")
        family = self.parts.get("familyname", words[1] if len(words) == 2 else "")
        return " ".join(part for part in (given, family) if part)


def apply(draft: UserDraft, changes: Iterable[Change]) -> None:
    for change in (one for given in changes for one in _split(given)):
        path = change.path
        if (
            path.schema is not None
            or path.attr in _IGNORED
            or (path.attr, path.sub) in _IGNORED_SUBS
        ):
            continue  # extension attributes, and core ones zerogate does not keep
        if path.where and path.attr != "emails":  # value filters select among many values
            raise bad(ScimType.INVALID_PATH, f"{path.text!r}: only emails take a [filter]")
        setter = _SETTERS.get((path.attr, path.sub))
        if setter is None:
            raise unknown_target(change)
        setter(draft, change)


def _split(change: Change) -> list[Change]:
    """`name` is the one single-valued complex attribute: an object sets its parts one by
    one; so does an object given to one selected address, `emails[type eq "work"]`."""
    path = change.path
    complex_value = isinstance(change.value, Mapping) and change.op is not Op.REMOVE
    if complex_value and path.sub is None and (path.attr == "name" or path.where):
        return sub_changes(change)
    return [change]


def _text(change: Change, attribute: str, max_length: int = 500) -> str:
    return (
        ""
        if change.op is Op.REMOVE
        else as_text(change.value, attribute, max_length=max_length) or ""
    )


def _username(draft: UserDraft, change: Change) -> None:
    if change.op is Op.REMOVE:
        raise bad(ScimType.INVALID_VALUE, "userName is required and cannot be removed")
    value = _text(change, "userName", max_length=128)
    if not value:
        raise bad(ScimType.INVALID_VALUE, "userName must not be empty")
    draft.username = value


def _display(draft: UserDraft, change: Change) -> None:
    draft.display = _text(change, "displayName")


def _formatted(draft: UserDraft, change: Change) -> None:
    draft.formatted = _text(change, "name.formatted")


def _name(draft: UserDraft, change: Change) -> None:
    # Only a remove or a null gets here: `_split` turned an object into one change per part.
    if change.op is not Op.REMOVE and change.value is not None:
        raise bad(ScimType.INVALID_VALUE, "name must be an object")
    draft.formatted = ""


def _part(draft: UserDraft, change: Change) -> None:
    assert change.path.sub is not None
    draft.parts[change.path.sub] = _text(change, change.path.text)


def _emails(draft: UserDraft, change: Change) -> None:
    if change.op is Op.REMOVE or change.value is None:
        if is_kept_address(change.path.where, draft.email):
            draft.email = None
        return
    items = change.value if isinstance(change.value, list) else [change.value]
    if change.path.where or not all(isinstance(item, Mapping) for item in items):
        raise bad(ScimType.INVALID_VALUE, 'emails must be a list of objects like {"value": …}')
    if items or change.op is Op.REPLACE:
        draft.email = _primary(items)


def _primary(items: list[object]) -> str | None:
    addresses = [item for item in items if isinstance(item, Mapping)]
    if not addresses:
        return None
    primary = [item for item in addresses if item.get("primary") in (True, "true", "True")]
    return as_text((primary or addresses)[0].get("value"), "emails.value", max_length=320) or None


def _email_value(draft: UserDraft, change: Change) -> None:
    if not is_kept_address(change.path.where, draft.email):
        return  # another address (type home, …): zerogate keeps only the work one
    draft.email = None if change.op is Op.REMOVE else _text(change, "emails.value", 320) or None


def is_kept_address(where: Filter, email: str | None) -> bool:
    """Whether `emails[…]` selects the one address zerogate keeps: work, primary."""
    for term in where:
        if not isinstance(term, Equals):
            return False
        key, value = (term.path.attr, term.path.sub), term.value
        if key == ("type", None):
            ok = isinstance(value, str) and value.lower() == "work"
        elif key == ("primary", None):
            ok = value in (True, "true", "True")
        elif key == ("value", None):
            ok = isinstance(value, str) and email is not None and value.lower() == email.lower()
        else:
            raise bad(
                ScimType.INVALID_PATH,
                f"emails can be selected by type, primary or value, not {term.path.text!r}",
            )
        if not ok:
            return False
    return True


def _active(draft: UserDraft, change: Change) -> None:
    if change.op is Op.REMOVE:
        raise bad(ScimType.INVALID_VALUE, "active cannot be removed; set it to false")
    draft.active = as_bool(change.value, "active")


def _external_id(draft: UserDraft, change: Change) -> None:
    draft.external_id = _text(change, "externalId", max_length=200) or None


_SETTERS: Mapping[tuple[str, str | None], Callable[[UserDraft, Change], None]] = {
    ("username", None): _username,
    ("displayname", None): _display,
    ("name", None): _name,
    ("name", "formatted"): _formatted,
    ("name", "givenname"): _part,
    ("name", "familyname"): _part,
    ("emails", None): _emails,
    ("emails", "value"): _email_value,
    ("active", None): _active,
    ("externalid", None): _external_id,
}
