#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian, for the dashboard's browser tests (tests/dashboard):
# /usr/bin/chromium and /usr/bin/chromedriver. Selenium drives them; nothing is downloaded at test time.
# Idempotent; needs root (CI runs as root).
set -euo pipefail
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-dejavu-core >/dev/null
fi
echo "setup-browser: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
