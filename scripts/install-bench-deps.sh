#!/usr/bin/env bash
# Installs what `make bench-http` and `make bench-connector` drive from Debian: the load
# generator (wrk) and the peers they are compared with (nginx, Caddy, socat). Runs as root without stdin (CI).
# Idempotent: does nothing when everything is there; `apt-get update` at most once.
set -euo pipefail

# nginx lives in /usr/sbin, which is not on every user's PATH.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

need=()
have wrk || need+=(wrk)
have nginx || need+=(nginx)
have caddy || need+=(caddy)
have socat || need+=(socat)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-bench-deps: missing ${need[*]} and cannot install them (needs root and apt-get)." >&2
  echo "install-bench-deps: as root, run: apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 2
fi
echo "install-bench-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
