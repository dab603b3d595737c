#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run ruff and the suite.
# Usage: scripts/install-and-test.sh [pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the end-to-end tests start themselves on free loopback ports.
APT_PACKAGES=(python3-venv python3-pip docker-registry skopeo redis-server postgresql chromium
              openssl containerd podman)

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
exec .venv/bin/pytest "$@"
