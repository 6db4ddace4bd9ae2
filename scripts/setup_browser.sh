#!/usr/bin/env bash
# Headless Chromium + chromedriver for the web-UI tests (pytest -m browser, make test-ui).
# Installs Debian's chromium and chromium-driver with apt-get when running as root or with
# passwordless sudo; otherwise says what to install and fails (the browser tests cannot run).
# Idempotent: does nothing when both are already there.
set -euo pipefail

say() { printf '\033[1m[setup-browser]\033[0m %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

if { have chromium || have chromium-browser; } && have chromedriver; then
  say "found $( (chromium --version || chromium-browser --version) 2>/dev/null | head -1) and $(chromedriver --version | cut -d' ' -f1-2)"
  exit 0
fi

packages=(chromium chromium-driver)
if have apt-get && [ "$(id -u)" = 0 ]; then
  say "installing ${packages[*]} with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
elif have apt-get && have sudo && sudo -n true 2>/dev/null; then
  say "installing ${packages[*]} with sudo apt-get"
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
else
  say "ERROR: chromium and chromedriver are not installed, and cannot be installed automatically here"
  say "  (not root, no passwordless sudo, or no apt-get). The web-UI tests need them:"
  say "  Debian/Ubuntu: sudo apt-get install ${packages[*]}"
  say "  other systems: install Chromium and the matching chromedriver, both on PATH"
  exit 1
fi
say "installed: $(chromium --version 2>/dev/null | head -1); $(chromedriver --version | cut -d' ' -f1-2)"
