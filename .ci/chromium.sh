#!/usr/bin/env bash
# Install Debian's headless-capable Chromium and its WebDriver for the browser tests
# (tests/browser): /usr/bin/chromium and /usr/bin/chromedriver. Does nothing when
# both are there. Needs root (apt). Quiet on stdout; apt's output goes to stderr.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
apt_install() {
    # Wait for another apt/dpkg run rather than fail on its lock.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=600 chromium chromium-driver >&2
}
apt_install || { apt-get update -q -o DPkg::Lock::Timeout=600 >&2 && apt_install; }
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || {
    echo >&2 "chromium or chromedriver missing after apt-get install"; exit 1; }
echo >&2 "$(/usr/bin/chromium --version 2>/dev/null || echo chromium) installed"
