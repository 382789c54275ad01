#!/usr/bin/env bash
# Write the locks: every Python dependency, direct and transitive, pinned with its hashes, in
# three nested sets with the same versions throughout:
#   requirements.lock        what the installed service runs on (the image's final stage, the wheel test)
#   requirements-build.lock  that, and what compiling the call path needs (setup.py's mypyc; the image's build stage)
#   requirements-dev.lock    that, and the tests' and checks' tools (make up, make test, CI)
# uv writes them (fast, and it resolves for Python 3.11 on Linux whatever runs it); plain pip
# installs them (`pip install --require-hashes -r ...`), so no machine needs uv to install.
#   scripts/lock.sh            # the newest releases pyproject.toml allows (make lock)
#   scripts/lock.sh --keep     # only what pyproject.toml's changes need; other pins stay
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
[ -x "$uv" ] || { echo "lock: $uv missing (make venv installs it from the dev lock)" >&2; exit 1; }
upgrade=(--upgrade)
[ "${1:-}" = "--keep" ] && upgrade=()
common=(--quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
        --annotation-style line)
# The widest set first; the narrower ones are held to its versions.
"$uv" pip compile "${common[@]}" "${upgrade[@]}" pyproject.toml --extra dev -o requirements-dev.lock
"$uv" pip compile "${common[@]}" pyproject.toml --extra compile -c requirements-dev.lock -o requirements-build.lock
"$uv" pip compile "${common[@]}" pyproject.toml -c requirements-dev.lock -o requirements.lock
# Which declared dependencies the locks were written from: tests/unit/test_lock.py compares it
# with pyproject.toml, so a dependency added without `make lock KEEP=1` is caught at once.
declared=$("${PYTHON:-.venv/bin/python}" -c 'import hashlib, json, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = {"dependencies": project["dependencies"], "optional": project["optional-dependencies"]}
print(hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest())')
for lock in requirements.lock requirements-build.lock requirements-dev.lock; do
  sed -i "1i # declared dependencies: sha256 $declared (pyproject.toml [project])" "$lock"
done
echo "lock: $(grep -c '^[a-z]' requirements.lock) run-time, $(grep -c '^[a-z]' requirements-build.lock) build, $(grep -c '^[a-z]' requirements-dev.lock) dev packages pinned"
