#!/usr/bin/env bash
# Headless Chromium + chromedriver for the web-UI tests (pytest -m browser, make test-ui).
# Installs Debian's chromium and chromium-driver with apt-get when running as root or with
# passwordless sudo; otherwise says what to install and fails (the browser tests cannot run).
# Idempotent: does nothing when both are already there.
set -euo pipefail

say() { printf '\033[1m[setup-browser]\033[0m %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
# shellcheck source=scripts/apt_install.sh
source "$(dirname "$0")/apt_install.sh"

if { have chromium || have chromium-browser; } && have chromedriver; then
  say "found $( (chromium --version || chromium-browser --version) 2>/dev/null | head -1) and $(chromedriver --version | cut -d' ' -f1-2)"
  exit 0
fi

packages=(chromium chromium-driver)
if ! apt_install "${packages[@]}"; then
  say "ERROR: chromium and chromedriver are not installed, and could not be installed automatically here"
  say "  (not root, no passwordless sudo, no apt-get, or apt-get failed). The web-UI tests need them:"
  say "  Debian/Ubuntu: sudo apt-get install ${packages[*]}"
  say "  other systems: install Chromium and the matching chromedriver, both on PATH"
  exit 1
fi
say "installed: $(chromium --version 2>/dev/null | head -1); $(chromedriver --version | cut -d' ' -f1-2)"
