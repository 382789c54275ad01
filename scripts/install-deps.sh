#!/usr/bin/env bash
# Install the Debian packages the hotline needs, only those missing. Idempotent; needs root or sudo.
#   scripts/install-deps.sh            # what `make up` and `make test` need (Asterisk itself: asterisk-root.sh)
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)  # the call records
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)          # SIPp: the softphones
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)  # the sid root that runs Asterisk
[ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)               # SRV records for hagi:// (several instances)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)  # Redis failover, tested on loopback
[ -x /usr/sbin/bearerbox ] || need+=(kannel)                  # the SMS gateway
[ -x /usr/lib/kannel/test/fakesmsc ] || need+=(kannel-extras)  # its fake SMSC, for tests and make up
command -v chromium >/dev/null 2>&1 || need+=(chromium)        # the agent screen's browser test
[ -d /usr/share/fonts/opentype/noto ] || need+=(fonts-noto-cjk)  # Chinese text in its screenshots
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v gcc >/dev/null 2>&1 || need+=(gcc)                # mypyc's C for the call path (make compiled)
if command -v python3.11 >/dev/null 2>&1 \
    && ! python3.11 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  need+=(python3.11-dev)                                       # its headers, for the same
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root (or sudo) to install: ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${need[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
