"""The control plane's collector settings: start-up objects frozen, the young generation larger."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from zerogate.heap import YOUNG_THRESHOLD, settle


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_settling_freezes_what_lives_and_collects_the_young_less_often() -> None:
    kept = [object() for _ in range(10)]
    settle()
    assert gc.get_freeze_count() > len(kept)
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.isenabled()  # cycles are still collected
