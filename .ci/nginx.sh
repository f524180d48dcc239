#!/usr/bin/env bash
# Install Debian's nginx (and openssl) for the test of the documented production set-up
# (tests/api/test_slow_clients.py runs docs/production.md's nginx block in front of
# irtcat serve, on loopback, in a folder of its own). Does nothing when both are there.
# Needs root (apt). Quiet on stdout; apt's output goes to stderr. The package's own
# service is not started: the test runs nginx itself.
set -euo pipefail

if command -v nginx >/dev/null && command -v openssl >/dev/null; then
    exit 0
fi
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=600 nginx openssl >&2
}
# A policy-rc.d keeps Debian's postinst from starting nginx on port 80.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt_install || { apt-get update -q -o DPkg::Lock::Timeout=600 >&2 && apt_install; }
command -v nginx >/dev/null || { echo >&2 "nginx missing after apt-get install"; exit 1; }
echo >&2 "$(nginx -v 2>&1) installed"
