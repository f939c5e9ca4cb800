"""The bounded memo: a dict that forgets everything when an entry would pass its budget."""

from __future__ import annotations

from zerogate.core.memo import Memo


def test_it_keeps_what_it_is_given_until_the_budget_would_be_passed() -> None:
    memo: Memo[str, int] = Memo(3)
    assert memo.get("a") is None
    assert memo.put("a", 1) == 1
    memo.put("b", 2)
    memo.put("c", 3)
    assert (memo.get("a"), memo.get("c"), len(memo)) == (1, 3, 3)
    memo.put("d", 4)  # a fourth would pass 3: everything before it is forgotten
    assert (memo.get("a"), memo.get("d"), len(memo)) == (None, 4, 1)
    assert "d" in memo and "a" not in memo


def test_sizes_count_against_the_budget_and_get_survives_clearing() -> None:
    memo: Memo[str, bytes] = Memo(100)
    get = memo.get  # bound once, as the hot paths do
    memo.put("big", b"x" * 60, size=60)
    memo.put("more", b"y" * 30, size=30)
    assert len(memo) == 2
    memo.put("over", b"z" * 20, size=20)  # 60 + 30 + 20 > 100
    assert len(memo) == 1 and get("over") == b"z" * 20 and get("big") is None
    memo.clear()
    memo.put("after", b"!")
    assert get("after") == b"!"  # the same dict: the bound `get` still sees it
