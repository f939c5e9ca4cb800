#!/usr/bin/env bash
# Installs the real OpenID Provider the SSO tests log in against: npm `oidc-provider` 9 and the
# Node 22 it supports (the machine's Node 20 is "unsupported" by it), both from npm, into DIR.
#
#   scripts/install-oidc-provider.sh [DIR]
#
# DIR defaults to $XDG_CACHE_HOME/zerogate/oidc-provider (or ~/.cache/...): outside the
# repository, shared by every checkout and kept between test runs. Idempotent: when DIR already
# has both packages it does nothing and touches no network. The versions are pinned exactly so
# every run tests against the same provider; change them here and nowhere else.
set -euo pipefail

OIDC_PROVIDER_VERSION=9.13.3
NODE_VERSION=22.23.3

dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/zerogate/oidc-provider}

installed() {
  [ -f "$dir/node_modules/oidc-provider/package.json" ] && [ -x "$dir/node_modules/.bin/node" ]
}

if installed; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-oidc-provider: npm is not installed; cannot install oidc-provider" >&2
  exit 3
fi

mkdir -p "$(dirname "$dir")"
# Two test runs may start at once: one installs, the other waits for it and then finds it done.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir.lock"
  flock -w 600 9
fi
if installed; then
  exit 0
fi

# Install into a scratch directory and move it into place only when complete, so an interrupted
# install never leaves a half-filled DIR that the check above would take for a finished one.
work=$(mktemp -d "$dir.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat >"$work/package.json" <<EOF
{
  "name": "zerogate-test-oidc-provider",
  "private": true,
  "description": "Test-only OpenID Provider for zerogate's SSO integration tests",
  "dependencies": {
    "node": "$NODE_VERSION",
    "oidc-provider": "$OIDC_PROVIDER_VERSION"
  }
}
EOF
echo "install-oidc-provider: installing oidc-provider $OIDC_PROVIDER_VERSION and node $NODE_VERSION into $dir" >&2
# The `node` package fetches its platform binary in an install script, so scripts stay enabled.
(cd "$work" && npm install --no-audit --no-fund --loglevel=error >&2)
if [ ! -x "$work/node_modules/.bin/node" ] || ! "$work/node_modules/.bin/node" --version >/dev/null; then
  echo "install-oidc-provider: the node $NODE_VERSION binary did not install" >&2
  exit 1
fi
rm -rf "$dir"
mv "$work" "$dir"
trap - EXIT
