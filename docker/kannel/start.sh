#!/bin/sh
# Start bearerbox or smsbox with kannel.conf's @@NAME@@ placeholders (outside comments) filled from the secret
# files (/run/secrets/<name in lower case>): each password is written once, in its file.
# Usage: start.sh bearerbox|smsbox
set -eu
template=${KANNEL_TEMPLATE:-/etc/kannel/kannel.conf}
secrets=${KANNEL_SECRETS:-/run/secrets}
conf=${KANNEL_CONF:-/tmp/kannel.conf}
umask 077
# awk, not sed: a secret is data, never part of a pattern or a replacement.
awk -v dir="$secrets" '
    {
        out = ""; rest = $0
        while ($0 !~ /^[ \t]*#/ && match(rest, /@@[A-Z_]+@@/)) {
            name = tolower(substr(rest, RSTART + 2, RLENGTH - 4))
            file = dir "/" name
            if ((getline value < file) <= 0) { print "kannel: no secret " file > "/dev/stderr"; exit 1 }
            close(file)
            sub(/\r$/, "", value)
            out = out substr(rest, 1, RSTART - 1) value
            rest = substr(rest, RSTART + RLENGTH)
        }
        print out rest
    }' "$template" > "$conf"
exec "$1" "$conf"
