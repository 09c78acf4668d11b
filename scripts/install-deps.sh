#!/usr/bin/env bash
# Installs what the test suite needs and the machine lacks: nftables and
# iproute2 for the enforcer's kernel tests, Debian's Chromium for the
# end-to-end tests, Debian's PostgreSQL for the store and API tests on
# PostgreSQL (the tests start a throwaway cluster of their own with its
# initdb and postgres), and the npm packages (htmx, axe-core and the
# playwright-core driver) pinned by package-lock.json. Needs root for the
# Debian packages; without root it says what is missing and carries on, and
# the tests that need it skip (or fail under RAMPART_REQUIRE_ALL=1).
# The e2e tests make their playwright driver directory themselves:
# "package" linked to node_modules/playwright-core, "node" to the system's
# node. Nothing is downloaded at test time (no `playwright install`).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nft >/dev/null || missing+=(nftables)
command -v iptables-restore >/dev/null || missing+=(iptables) # make bench: the linear comparison
command -v ip >/dev/null || missing+=(iproute2)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# Debian keeps initdb and postgres out of PATH, in a folder per version.
if ! command -v initdb >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  missing+=(postgresql)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
      # The tests need the binaries, not the system cluster Debian would
      # create and start on port 5432.
      mkdir -p /etc/postgresql-common/createcluster.d
      echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/rampart-tests.conf
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing ${missing[*]} (run as root to install them); the tests that need them will skip" >&2
  fi
fi

if [ -f package-lock.json ] && command -v npm >/dev/null; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
fi
