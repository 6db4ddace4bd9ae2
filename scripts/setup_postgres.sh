#!/usr/bin/env bash
# PostgreSQL server binaries for the results-store and monitor tests (make test runs this).
# The tests start their own throw-away cluster (initdb + pg_ctl in a temp dir, a free loopback
# port); nothing here starts a server or touches a system cluster. mmemo itself needs no
# PostgreSQL: users who only want SQLite can skip this, and the PostgreSQL tests then skip
# with a message (unless MMEMO_REQUIRE_POSTGRES=1, as in CI, makes that a failure).
# Idempotent: does nothing when initdb is already there.
set -euo pipefail

say() { printf '\033[1m[setup-postgres]\033[0m %s\n' "$*"; }
# shellcheck source=scripts/apt_install.sh
source "$(dirname "$0")/apt_install.sh"

find_initdb() {
  command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1
}

if [ -n "$(find_initdb)" ]; then
  say "found $("$(find_initdb)" --version)"
  exit 0
fi
if ! apt_install postgresql; then
  say "WARNING: PostgreSQL is not installed and could not be installed automatically here;"
  say "  the PostgreSQL variants of the store and monitor tests will be skipped."
  say "  Debian/Ubuntu: sudo apt-get install postgresql    macOS: brew install postgresql"
  exit 0
fi
# Debian starts the packaged cluster on install; the tests do not use it.
say "installed $("$(find_initdb)" --version)"
