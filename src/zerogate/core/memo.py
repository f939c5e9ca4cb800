"""A bounded memo: what a server works out again and again from the same inputs, kept.

The gateway keeps parsed client addresses, checked request heads, verified tokens, remembered
decisions and the like. Each is a dict that must not grow without bound, since clients choose
its keys. `Memo` is that dict: when an entry would take it over its budget, it forgets
everything at once. That is cheaper than LRU bookkeeping on every hit, and fine for working
sets far below the budget.

`get` is the dict's own method, bound once, so a lookup on the hot path runs no Python frame.
Each entry counts a `size` against the budget: 1 for a budget in entries, or its bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    __slots__ = ("_budget", "_items", "_used", "get")

    def __init__(self, budget: int) -> None:
        self._items: dict[K, V] = {}
        self._budget = budget
        self._used = 0
        self.get: Callable[[K], V | None] = self._items.get

    def put(self, key: K, value: V, size: int = 1) -> V:
        """Keep `value` for `key`; everything is forgotten first if the budget would be passed."""
        if self._used + size > self._budget:
            self.clear()
        self._items[key] = value
        self._used += size
        return value

    def clear(self) -> None:
        self._items.clear()  # the same dict: `get` stays bound to it
        self._used = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
