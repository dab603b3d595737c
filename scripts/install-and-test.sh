#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run ruff and the suite.
# Usage: scripts/install-and-test.sh [pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the end-to-end tests start themselves on free loopback ports.
APT_PACKAGES=(python3-venv python3-pip docker-registry skopeo redis-server postgresql chromium
              openssl containerd podman slapd ldap-utils
              # python-ldap (the `ldap` extra, FAB's LDAP client) builds from source against these.
              libldap2-dev libsasl2-dev gcc python3-dev)

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    # The tests run their own slapd from a generated config; the package's postinst must not
    # ask for an admin password nor build and start a system directory of its own.
    echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
    $SUDO apt-get update -qq
    # `env`: sudo drops the caller's environment, and with it DEBIAN_FRONTEND.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
    # A system slapd the package started anyway (an older preseed, another config) is not ours.
    if [[ " ${missing[*]} " == *" slapd "* ]]; then
        if [[ -d /run/systemd/system ]]; then
            $SUDO systemctl disable --now slapd >/dev/null 2>&1 || true
        else
            $SUDO service slapd stop >/dev/null 2>&1 || true
        fi
    fi
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
exec .venv/bin/pytest "$@"
