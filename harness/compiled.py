"""Whether the compiled call path beside the sources (setup.py, `make compiled`) is current.

Python imports a compiled module in preference to its source, so a source edited after
compiling would silently not run; and the compiled modules call each other in C, built against
each other's layout, so one stale module makes them all suspect.

The modules are setup.py's COMPILED list, read here rather than written again; the Makefile
asks for their packages with `python -m harness.compiled dirs`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def compiled_sources(root: Path) -> list[str]:
    """setup.py's COMPILED list, read without running setup.py (running it builds)."""
    for node in ast.parse((root / "setup.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "COMPILED" for target in node.targets):
            return [str(path) for path in ast.literal_eval(node.value)]
    raise LookupError(f"{root / 'setup.py'}: no COMPILED list")


def compiled_packages(root: Path) -> list[str]:
    """The packages that hold compiled modules: their every source goes into the build, since
    mypyc type-checks the compiled modules against what they import."""
    return sorted({Path(path).parent.as_posix() for path in compiled_sources(root)})


def stale_build(root: Path) -> str | None:
    """Why the compiled modules under `root` cannot be trusted, or None: none are built, or
    they were built after every source they were compiled from last changed."""
    packages = compiled_packages(root)
    built = [path for package in packages for path in (root / package).glob("*.so")]
    if not built:
        return None
    oldest = min(built, key=lambda path: path.stat().st_mtime)
    sources = [root / "setup.py", *(path for package in packages for path in (root / package).glob("*.py"))]
    changed = [path for path in sources if path.exists() and path.stat().st_mtime > oldest.stat().st_mtime]
    if not changed:
        return None
    names = ", ".join(str(path.relative_to(root)) for path in sorted(changed)[:5])
    return (f"{names} changed after the call path was compiled ({oldest.relative_to(root)}): "
            "run `make compiled` to rebuild it, or `make pure` to run the sources")


def main(argv: list[str]) -> int:
    if argv != ["dirs"]:
        print("usage: python -m harness.compiled dirs", file=sys.stderr)
        return 2
    print(" ".join(compiled_packages(Path.cwd())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
