#!/bin/sh
# The first-run step of the production topology (docker/README.md walks through it), safe to run
# again: it writes what is missing and never replaces a secret that exists.
#   - docker/hotline.env from hotline.env.example (settings only: every secret is a file below);
#   - docker/secrets/<name>: each secret once, random, in the one file every part reads it from;
#   - docker/secrets/agent_phones (name,SIP secret: each agent's phone registers with it) and
#     docker/secrets/agent_screens (name,secret: the agent signs in to the agent screen with it),
#     a line for every agent of docker/data/agents.csv that has none yet.
# Usage: docker/first-run.sh [DOCKER_DIR]   (default: the directory this script is in)
set -eu

dir=${1:-$(cd "$(dirname "$0")" && pwd)}
secrets=$dir/secrets
data=$dir/data
mkdir -p "$secrets" "$data"
# The directory keeps other users of the host out; the files stay readable (0644) because
# Compose bind-mounts file secrets with the host's owner and mode, and the containers' own
# unprivileged users (hotline, kannel) must read them.
chmod 700 "$secrets"
umask 022

random_secret() {
    # 128 bits from the kernel, as hex: no character any file format or URL would trip on.
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

for name in postgres_password ami_secret sms_password sms_report_token metrics_token \
            kannel_admin_password supervisor_password; do
    if [ -s "$secrets/$name" ]; then
        echo "kept     secrets/$name"
    else
        random_secret > "$secrets/$name.new" && mv "$secrets/$name.new" "$secrets/$name"
        echo "written  secrets/$name"
    fi
done

if [ -e "$dir/hotline.env" ]; then
    echo "kept     hotline.env"
else
    cp "$dir/hotline.env.example" "$dir/hotline.env"
    echo "written  hotline.env (from hotline.env.example; no secret is in it)"
fi

# The agents of the roster file, by their agent_id (the first column; header, BOM and CR skipped).
agents() {
    [ -f "$data/agents.csv" ] || return 0
    sed -e '1s/^\xEF\xBB\xBF//' -e 's/\r$//' "$data/agents.csv" \
        | awk -F, 'NR > 1 && $1 ~ /^[a-z][a-z0-9_-]*$/ { print $1 }'
}

for file in agent_phones agent_screens; do
    [ -e "$secrets/$file" ] || : > "$secrets/$file"
    added=0
    for agent in $(agents); do
        if ! grep -q "^$agent," "$secrets/$file"; then
            echo "$agent,$(random_secret)" >> "$secrets/$file"
            added=$((added + 1))
        fi
    done
    echo "secrets/$file: $added agent(s) added, $(grep -c , "$secrets/$file" || true) in all"
done
if [ ! -f "$data/agents.csv" ]; then
    echo "no data/agents.csv yet: put the roster there and run this again for the agents' secrets"
fi
