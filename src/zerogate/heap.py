"""The garbage collector's settings for the long-running servers (control plane, gateway).

After start-up a server holds a large heap that lives as long as it does (the compiled policy,
the inventory, SQLAlchemy's and FastAPI's models) and then allocates many containers per
request, most of them gone within the request. CPython's cycle collector would walk that
old heap again and again as the young objects pile up: under load, a sizeable share of the
CPU. `settle()`, called once the server is ready, moves what exists then out of the
collector's sight (`gc.freeze`) and lets more young objects gather between collections.
Reference counting still frees everything that is not in a cycle, at once, as before.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)


def settle() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
