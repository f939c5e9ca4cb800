"""A small HTTPS load client run inside a namespace: one JSON line per request, flushed at once.

Usage: load_client.py URL HOST COOKIE CA SECONDS THREADS. Each line is
{"t": <time.monotonic()>, "ok": <status was 200>}; the monotonic clock is the machine's, so the
test compares these times with its own.
"""

from __future__ import annotations

import json
import ssl
import sys
import threading
import time

import httpx

MAX_REQUESTS = 20_000  # per thread: a bound, whatever happens


def main() -> None:
    url, host, cookie, ca, seconds, threads = sys.argv[1:7]
    end = time.monotonic() + float(seconds)
    lock = threading.Lock()

    def load(index: int) -> None:
        trust = ssl.create_default_context(cafile=ca)
        headers = {"host": host, "cookie": cookie}
        with httpx.Client(verify=trust, headers=headers, timeout=5) as client:
            for n in range(MAX_REQUESTS):
                if time.monotonic() > end:
                    return
                try:
                    ok = client.get(f"{url}/echo/{index}-{n}").status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    print(json.dumps({"t": time.monotonic(), "ok": ok}), flush=True)
                if not ok:
                    time.sleep(0.01)

    workers = [threading.Thread(target=load, args=(i,)) for i in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
