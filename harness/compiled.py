"""Whether the compiled call path beside the sources (setup.py, `make compiled`) is current.

Python imports a compiled module in preference to its source, so a source edited after
compiling would silently not run; and the compiled modules call each other in C, built against
each other's layout, so one stale module makes them all suspect.
"""

from __future__ import annotations

from pathlib import Path

# The packages setup.py compiles modules of; `make compiled` rebuilds when any file in them changes.
COMPILED_PACKAGES = ("agi", "hotline_core", "tier_lookup")


def stale_build(root: Path) -> str | None:
    """Why the compiled modules under `root` cannot be trusted, or None: none are built, or
    they were built after every source they were compiled from last changed."""
    built = [path for package in COMPILED_PACKAGES for path in (root / package).glob("*.so")]
    if not built:
        return None
    oldest = min(built, key=lambda path: path.stat().st_mtime)
    sources = [root / "setup.py", *(path for package in COMPILED_PACKAGES for path in (root / package).glob("*.py"))]
    changed = [path for path in sources if path.exists() and path.stat().st_mtime > oldest.stat().st_mtime]
    if not changed:
        return None
    names = ", ".join(str(path.relative_to(root)) for path in sorted(changed)[:5])
    return (f"{names} changed after the call path was compiled ({oldest.relative_to(root)}): "
            "run `make compiled` to rebuild it, or `make pure` to run the sources")
