#!/usr/bin/env bash
# Installs the system libraries Pinpool links against, when missing (Debian/Ubuntu).
set -euo pipefail
missing=()
# sqlite3: the hostile-input test checks the store with it; systemd: scripts/verify-deploy
# runs systemd-analyze on the units in deploy/.
for pkg in libzmq3-dev libsqlite3-dev python3-venv sqlite3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v systemd-analyze >/dev/null 2>&1 || missing+=("systemd")
# python3-venv is only needed where python3 cannot make a venv on its own.
if [[ " ${missing[*]-} " == *" python3-venv "* ]] && python3 -m venv --help >/dev/null 2>&1; then
  missing=("${missing[@]/python3-venv}")
fi
pkgs=$(printf '%s ' "${missing[@]-}" | xargs)
if [ -n "$pkgs" ]; then
  echo "installing: $pkgs"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $pkgs >/dev/null
fi
