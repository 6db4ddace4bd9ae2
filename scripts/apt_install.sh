# Sourced by scripts/setup.sh and scripts/setup_browser.sh (which define `say`).
# apt_install PACKAGE... installs Debian packages when this user can: as root, or with
# passwordless sudo. Returns 1 without trying when neither (or no apt-get), else apt-get's status.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; } || return 1
    sudo=(sudo)
  fi
  say "installing $* with ${sudo[*]:+sudo }apt-get"
  ${sudo[@]+"${sudo[@]}"} apt-get update -qq &&
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
