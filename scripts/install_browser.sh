#!/usr/bin/env bash
# Chromium and its WebDriver from the system's packages, for tests/serve/test_http_browser.py (selenium drives
# /usr/bin/chromium through /usr/bin/chromedriver; nothing is downloaded by pip or at test time).
# Idempotent: does nothing when both are there. Installs with apt-get when run as root (CI); otherwise says
# what to run and fails, since the browser test fails rather than skips under CI=true.
set -euo pipefail
if [ -x "${CONVREC_CHROMIUM:-/usr/bin/chromium}" ] && [ -x "${CONVREC_CHROMEDRIVER:-/usr/bin/chromedriver}" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser.sh: Chromium is missing (/usr/bin/chromium, /usr/bin/chromedriver) and this is not" \
         "root; run: sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "install_browser.sh: no apt-get here; install Chromium and chromedriver as /usr/bin/chromium and" \
         "/usr/bin/chromedriver (or set CONVREC_CHROMIUM and CONVREC_CHROMEDRIVER)" >&2
    exit 1
fi
echo "install_browser.sh: installing chromium and chromium-driver (Debian packages)" >&2
apt-get update -q
# with recommends: they bring the fonts a bare image lacks
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
