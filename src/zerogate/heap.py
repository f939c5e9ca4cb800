"""The cycle collector's settings for the control plane, once it has started.

CPython's cycle collector runs every 700 new container objects and, now and then, walks every
object the process holds. The control plane's audit ingest makes about 100,000 dicts and lists
per batch of 2,000 events, so it paid for walks over everything it loaded at start-up (FastAPI's
and SQLAlchemy's models, the app): `bench/audit_ingest.py` measured about 7 µs of its 32 µs
per event. `settle()` freezes what is alive once start-up is done (the collector no longer
looks at it; it is never freed, as start-up objects never are) and collects the youngest
generation every 10,000 allocations instead of 700. Reference counting still frees everything
outside a cycle at once.

The gateway does not call it: there it showed no measurable effect (`bench/gateway_cpu.py`,
measured twice: within its noise), and frozen, the first snapshot's cyclic garbage would stay
for the process's life.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)


def settle() -> None:
    """Call once the process has built what it keeps for its whole life."""
    gc.collect()  # free start-up garbage first: frozen objects are never collected
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
