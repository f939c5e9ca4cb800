"""What the store refuses, as exceptions the servers map to answers (404, 409, 422)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zerogate.core.inventory.document import Problem


class NotFound(Exception):
    def __init__(self, title: str, key: str) -> None:
        super().__init__(f"{title} {key!r} not found")


class Conflict(Exception):
    """The change contradicts what is stored: a duplicate, or an object still in use."""


@dataclass(frozen=True, slots=True)
class Invalid(Exception):
    problems: Sequence[Problem]

    def __str__(self) -> str:
        return "; ".join(str(problem) for problem in self.problems)
