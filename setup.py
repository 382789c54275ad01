"""The call path compiled with mypyc, when asked for: HOTLINE_COMPILE=1.

Everything else about the package is in pyproject.toml. The modules below run at every call
entry; compiled, the entry costs about a quarter less CPU (docs/benchmarks.md). mypyc type-checks
them as it compiles, so it needs the project's dependencies installed: build without isolation.

    HOTLINE_COMPILE=1 python setup.py build_ext --inplace      # beside the sources (make compiled)
    HOTLINE_COMPILE=1 pip wheel --no-build-isolation .          # a compiled wheel (docker/)

Without HOTLINE_COMPILE the package installs as plain Python and behaves the same.
"""

from __future__ import annotations

import os

from setuptools import setup

COMPILED = [
    "agi/entry.py",
    "agi/protocol.py",
    "agi/records.py",
    "agi/server.py",
    "agi/session.py",
    "agi/variables.py",
    "hotline_core/keys.py",
    "hotline_core/loglines.py",
    "hotline_core/numbers.py",
    "hotline_core/redispipe.py",
    "tier_lookup/identity.py",
    "tier_lookup/layout.py",
    "tier_lookup/reader.py",
    "tier_lookup/service.py",
]


def extensions() -> list[object]:
    if os.environ.get("HOTLINE_COMPILE") != "1":
        return []
    from mypyc.build import mypycify  # only a compiling build needs mypy

    # One group: calls between these modules are C calls. Its shared library is hotline_core/native__mypyc.
    return list(mypycify(COMPILED, group_name="hotline_core.native"))


setup(ext_modules=extensions())
