"""The guard against compiled modules older than their sources (harness/compiled.py)."""

from __future__ import annotations

import os
from pathlib import Path

from harness.compiled import compiled_packages, compiled_sources, stale_build

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = ".cpython-311-x86_64-linux-gnu.so"
SETUP = 'from setuptools import setup\nCOMPILED = ["agi/entry.py", "tier_lookup/identity.py"]\nsetup()\n'


def tree(root: Path, built_at: float, edited_at: float) -> None:
    for package in ("agi", "hotline_core", "tier_lookup"):
        (root / package).mkdir()
    (root / "setup.py").write_text(SETUP)
    (root / "agi" / "entry.py").write_text("")
    (root / "agi" / "ivr.py").write_text("")
    (root / "agi" / f"entry{SUFFIX}").write_bytes(b"")
    (root / "tier_lookup" / f"identity{SUFFIX}").write_bytes(b"")
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (built_at, built_at))
    os.utime(root / "agi" / "ivr.py", (edited_at, edited_at))


def test_the_compiled_list_is_read_from_setup_py_and_names_real_sources() -> None:
    sources = compiled_sources(ROOT)
    assert "agi/entry.py" in sources
    assert [path for path in sources if not (ROOT / path).is_file()] == []
    assert compiled_packages(ROOT) == ["agi", "hotline_core", "tier_lookup"]


def test_nothing_compiled_is_nothing_stale(tmp_path: Path) -> None:
    for package in ("agi", "hotline_core", "tier_lookup"):
        (tmp_path / package).mkdir()
    (tmp_path / "setup.py").write_text(SETUP)
    (tmp_path / "agi" / "entry.py").write_text("")
    assert stale_build(tmp_path) is None


def test_compiled_after_every_edit_is_current(tmp_path: Path) -> None:
    tree(tmp_path, built_at=2_000_000, edited_at=1_000_000)
    assert stale_build(tmp_path) is None


def test_any_source_of_the_packages_edited_after_compiling_is_named(tmp_path: Path) -> None:
    # ivr.py is not compiled itself, but the compiled modules were type-checked against it.
    tree(tmp_path, built_at=1_000_000, edited_at=2_000_000)
    why = stale_build(tmp_path)
    assert why is not None
    assert "agi/ivr.py" in why
    assert "agi/entry.py" not in why
    assert "make compiled" in why
