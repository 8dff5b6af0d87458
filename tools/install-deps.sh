#!/usr/bin/env bash
# Installs the Debian 12 packages keyvend builds and tests with (see ../shared/DEPS.md and
# third_party/README.md). Idempotent: skips apt entirely when everything is present.
set -euo pipefail
PKGS=(build-essential cmake pkg-config ccache
      librocksdb-dev libcpp-httplib-dev libsimdjson-dev libabsl-dev
      libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
      curl python3
      clang libclang-rt-14-dev  # fuzzing (libFuzzer, ASan, UBSan) and -Wthread-safety
      clang-format              # tools/format-check.sh (the format gate of tools/test.sh)
      zlib1g-dev                # gzip of the storefront's files (src/web)
      libcurl4-openssl-dev      # outbound HTTPS and SMTP (src/net, src/outbound)
      python3-aiosmtpd          # the SMTP sink of the mail tests (tests/fakes/smtp_sink.py)
      libjs-chart.js            # Chart.js, embedded in the admin console at build time
      chromium chromium-driver python3-selenium  # the browser tests (tests/browser)
      fonts-wqy-microhei)       # a CJK font, so zh-CN screenshots show the text
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
