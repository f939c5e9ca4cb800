"""What the store refuses, as exceptions the servers map to answers (404, 409, 422)."""

from __future__ import annotations

from collections.abc import Sequence

from zerogate.core.inventory.document import Problem


class NotFound(Exception):
    def __init__(self, title: str, key: str) -> None:
        super().__init__(f"{title} {key!r} not found")


class Conflict(Exception):
    """The change contradicts what is stored: a duplicate, or an object still in use."""


class Invalid(Exception):
    """The object breaks a rule; each problem has its path inside the object."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__()
        self.problems = tuple(problems)

    def __str__(self) -> str:
        return "; ".join(str(problem) for problem in self.problems)
