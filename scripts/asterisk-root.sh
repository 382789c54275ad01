#!/usr/bin/env bash
# Build, once, the Debian sid root that runs Asterisk 22 (Debian 12 has no Asterisk package).
# Cached outside the git tree; rebuilt only when missing or incomplete. Prints the root's path.
#   scripts/asterisk-root.sh              # default: $HOTLINE_ASTERISK_ROOT or ~/.cache/hotline/asterisk-root
#   scripts/asterisk-root.sh /some/dir
set -euo pipefail

root=${1:-${HOTLINE_ASTERISK_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/hotline/asterisk-root}}
ready="$root/.hotline-ready"
# The major version asterisk_conf/ was written for: another one may read the same files differently
# (modules renamed, options dropped), so it is refused rather than run.
wanted=$(tr -d '[:space:]' < "$(dirname "$0")/../asterisk_conf/asterisk-major")
check_version() {  # $1: the root; prints its version, fails when its major is not $wanted
  local version
  version=$(cat "$1/.hotline-asterisk-version" 2>/dev/null || true)
  if [ -z "$version" ]; then
    version=$(chroot "$1" asterisk -V 2>/dev/null | sed -n 's/^Asterisk //p')
    echo "$version" > "$1/.hotline-asterisk-version"
  fi
  if [ "${version%%.*}" != "$wanted" ]; then
    echo "asterisk-root: $1 brings Asterisk ${version:-(unknown)}, but asterisk_conf/ is written for Asterisk $wanted" >&2
    echo "asterisk-root: review asterisk_conf/ for that version and change asterisk_conf/asterisk-major, or" \
         "remove $1 to build the root again" >&2
    return 1
  fi
  echo "$version"
}
if [ -f "$ready" ] && [ -x "$root/usr/sbin/asterisk" ]; then
  check_version "$root" >/dev/null
  echo "$root"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "asterisk-root: building the root needs root (debootstrap, chroot); run as root or with sudo" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { echo "asterisk-root: debootstrap missing (make deps installs it)" >&2; exit 1; }

partial="$root.partial"
rm -rf "$partial"
mkdir -p "$(dirname "$root")"
started=$(date +%s)
echo "asterisk-root: debootstrap sid into $partial (about a minute, once)" >&2
# No mirror argument: debootstrap's default Debian mirror.
debootstrap --variant=minbase sid "$partial" >"$partial.log" 2>&1 || { tail -20 "$partial.log" >&2; exit 1; }
# sid's Release file may be past its Valid-Until date; that is expected for a rolling suite.
chroot "$partial" sh -c 'apt-get -o Acquire::Check-Valid-Until=false update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends asterisk asterisk-modules &&
  apt-get clean' >>"$partial.log" 2>&1 || { tail -20 "$partial.log" >&2; exit 1; }
version=$(check_version "$partial") || exit 1
echo "asterisk-root: Asterisk $version (recorded in .hotline-asterisk-version)" >&2
touch "$partial/.hotline-ready"
rm -rf "$root"
mv "$partial" "$root"
rm -f "$partial.log"
echo "asterisk-root: ready in $(( $(date +%s) - started )) s" >&2
echo "$root"
