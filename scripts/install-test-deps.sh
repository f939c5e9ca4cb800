#!/usr/bin/env bash
# Installs what the integration tests drive from Debian: PostgreSQL (server and psql), curl,
# Chromium for the Playwright browser tests (Playwright never downloads a browser here), and
# iproute2, nftables and socat for the multi-host tests in network namespaces.
# Idempotent: does nothing when everything is there; `apt-get update` at most once.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)   # Playwright drives Debian's Chromium
command -v npm >/dev/null 2>&1 || need+=(npm)             # runs the real OIDC provider
command -v ip >/dev/null 2>&1 || need+=(iproute2)         # network namespaces (multi-host tests)
command -v nft >/dev/null 2>&1 || need+=(nftables)        # the private host's firewall in them
command -v socat >/dev/null 2>&1 || need+=(socat)         # a plain TCP service behind a connector

install_oidc_provider() {
  # The real OIDC provider (npm oidc-provider on Node 22) for the SSO tests; idempotent.
  if command -v npm >/dev/null 2>&1; then
    "$(dirname "$0")/install-oidc-provider.sh"
  fi
}

if [ ${#need[@]} -eq 0 ]; then
  install_oidc_provider
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: missing ${need[*]} and cannot install (needs root and apt-get); those tests will skip" >&2
  exit 0
fi
echo "install-test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
install_oidc_provider
