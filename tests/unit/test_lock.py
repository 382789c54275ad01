"""The locks (scripts/lock.sh) against pyproject.toml, and the Asterisk version the
configuration was written for against the root the project builds."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements.lock", "requirements-build.lock", "requirements-dev.lock")
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^ ;\\]+)")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    found = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = _PIN.match(block)
        if match:
            assert "--hash=sha256:" in block, f"{lock}: {match[1]} has no hash"
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_every_dependency_is_pinned_in_its_lock_with_one_version_across_the_locks() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    run, build, dev = (pins(lock) for lock in LOCKS)
    wanted = {
        "requirements.lock": (run, project["dependencies"]),
        "requirements-build.lock": (build, project["dependencies"] + project["optional-dependencies"]["compile"]),
        "requirements-dev.lock": (dev, [r for r in project["optional-dependencies"]["dev"]
                                        if not r.startswith("hotline")]),
    }
    for lock, (pinned, asked) in wanted.items():
        missing = [r for r in asked if _name(r) not in pinned]
        assert not missing, f"{lock} lacks {missing}: run `make lock KEEP=1`"
    assert set(run) <= set(build) <= set(dev)
    differ = {name: (version, dev[name]) for name, version in {**run, **build}.items() if dev[name] != version}
    assert not differ, differ


def test_the_locks_were_written_from_the_dependencies_pyproject_declares_now() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {"dependencies": project["dependencies"], "optional": project["optional-dependencies"]}
    declared = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()
    for lock in LOCKS:
        first = (ROOT / lock).read_text().splitlines()[0]
        assert first == f"# declared dependencies: sha256 {declared} (pyproject.toml [project])", (
            f"{lock} was written from other dependencies than pyproject.toml declares: run `make lock KEEP=1`")


def fake_root(tmp_path: Path, version: str) -> Path:
    root = tmp_path / "root"
    (root / "usr" / "sbin").mkdir(parents=True)
    (root / "usr" / "sbin" / "asterisk").write_text("#!/bin/sh\n")
    (root / "usr" / "sbin" / "asterisk").chmod(0o755)
    (root / ".hotline-ready").touch()
    (root / ".hotline-asterisk-version").write_text(version + "\n")
    return root


def test_a_root_of_another_asterisk_major_version_is_refused_by_name(tmp_path: Path) -> None:
    wanted = (ROOT / "asterisk_conf" / "asterisk-major").read_text().strip()
    script = str(ROOT / "scripts" / "asterisk-root.sh")
    other = fake_root(tmp_path / "other", f"{int(wanted) + 1}.0.1-1")
    done = subprocess.run([script, str(other)], capture_output=True, text=True, check=False, env=os.environ)
    assert done.returncode == 1
    assert f"brings Asterisk {int(wanted) + 1}.0.1-1, but asterisk_conf/ is written for Asterisk {wanted}" in done.stderr
    same = fake_root(tmp_path / "same", f"{wanted}.10.1+dfsg-1")
    done = subprocess.run([script, str(same)], capture_output=True, text=True, check=False, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(same)
