"""Reading Asterisk's queue_log file into the records database, from a checkpoint.

The file is Asterisk's, written whether or not `hotline serve` runs; this reader picks up where
its last committed checkpoint (device, inode, byte offset) says, so a reader stopped for an
hour, or a database away for an hour, catches up on restart with nothing counted twice. A new
inode (the file was rotated) starts from the top of the new file; a file shorter than the
checkpoint (truncated in place) too, under a new file key so its offsets cannot collide.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog

from ami_bridge.seating import DeskOf
from hotline.records.facts import sane_window
from hotline.records.queue_log import parse_chunk
from hotline.records.store import RecordStore
from hotline_core.loops import keep_stepping

log = structlog.get_logger("records.queue_log")

CHUNK_BYTES = 1 << 20
COMPLETIONS = frozenset({"COMPLETECALLER", "COMPLETEAGENT"})
CallsEnded = Callable[[list[str]], Awaitable[None]]  # uniqueids of calls an agent finished


def _read(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


class QueueLogReader:
    def __init__(self, store: RecordStore, path: Path, source: str, desks: Callable[[], Awaitable[DeskOf]],
                 poll_s: float = 0.5, completed: CallsEnded | None = None, completed_within_s: float = 6 * 3600,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._store = store
        # The wall clock (not a pinned one): it bounds the times a line may carry (sane_window).
        self._clock = clock
        # Told of calls an agent finished (COMPLETECALLER/COMPLETEAGENT) in the last hours: the
        # post-call SMS of a call that ended while no `hotline serve` heard AMI is sent from here.
        self._completed = completed
        self._completed_within = completed_within_s
        self._path = path
        self._source = source
        self._desks = desks
        self._poll_s = poll_s

    async def run(self) -> None:
        """Forever; a database or file that is away is waited for, and said once."""
        await keep_stepping(self.step, "queue_log not read; retrying", "queue_log reading again",
                            idle_s=self._poll_s, source=self._source)

    async def step(self) -> int:
        """Read what is new (up to a chunk) and commit it; returns the lines stored."""
        try:
            stat = await asyncio.to_thread(self._path.stat)
        except FileNotFoundError:
            return 0  # Asterisk has not logged a queue event yet
        key = f"{stat.st_dev}:{stat.st_ino}"
        checkpoint = await self._store.checkpoint(self._source)
        if checkpoint is None:
            file_key, offset = key, 0
        elif checkpoint[0].split("~")[0] != key:
            log.info("queue_log file replaced (rotated); reading the new one from its start", source=self._source)
            file_key, offset = key, 0
        elif checkpoint[1] > stat.st_size:
            log.warning("queue_log file shorter than what was read (truncated); reading it from its start",
                        source=self._source)
            file_key, offset = f"{key}~{time.time():.0f}", 0
        else:
            file_key, offset = checkpoint
        if stat.st_size <= offset and checkpoint is not None and checkpoint[0] == file_key:
            return 0
        data = await asyncio.to_thread(_read, self._path, offset, CHUNK_BYTES)
        earliest, latest = sane_window(self._clock())
        parsed = parse_chunk(data, offset, (int(earliest.timestamp()), int(latest.timestamp())))
        if parsed.consumed == 0 and checkpoint is not None and checkpoint[0] == file_key:
            return 0  # only a line Asterisk is still writing
        for bad in parsed.bad[:10]:
            log.warning("queue_log line quarantined", file=f"{self._path}@{bad.offset}", reason=bad.reason)
        stored = await self._store.add_queue_log(self._source, file_key, parsed.rows, offset + parsed.consumed,
                                                 parsed.bad, await self._desks())
        if stored and self._completed is not None:
            recent = time.time() - self._completed_within
            ended = sorted({r.callid for r in parsed.rows if r.event in COMPLETIONS and r.at >= recent})
            if ended:
                await self._completed(ended)
        return len(parsed.rows) if stored else 0
