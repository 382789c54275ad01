"""`hotline-agi [linkedid]`: classic AGI, `AGI(hotline-agi,${CHANNEL(linkedid)})`, one process per
call, for installations without FastAGI. A Python start costs ~0.3 s of CPU: prefer FastAGI."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from agi.classic import open_agi, set_on_channel
from agi.entry import Entered, log_entry
from hotline.app import call_entry, open_services
from hotline_core.logs import configure_logging
from hotline_core.settings import load_settings
from hotline_core.yamlpos import ConfigFileError


def main() -> int:
    started = time.perf_counter()
    try:
        settings = load_settings(os.environ)
    except ConfigFileError as exc:
        print(f"hotline-agi: configuration error: {exc}", file=sys.stderr)
        return 1
    # Asterisk copies an AGI script's stderr into its own log: JSON lines, numbers masked.
    configure_logging(settings.log_level, "json", sys.stderr)
    agi = open_agi()
    env: dict[str, str] = dict(agi.env)
    linkedid = sys.argv[1] if len(sys.argv) > 1 else None

    async def enter() -> Entered:
        async with open_services(settings) as services:
            entered = await call_entry(services).enter(env, "classic", linkedid)
            log_entry(env, entered.identity, started, route="classic")
            return entered

    set_on_channel(agi, asyncio.run(enter()).contract.variables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
