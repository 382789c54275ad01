"""Tier tables against a real redis-server: import modes, atomic replace, refusals, lookups."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from harness.redis_server import RedisServer
from hotline_core.policy import Policy
from tests.conftest import local, row_context
from tier_lookup.csvfile import BLOCK_BYTES
from tier_lookup.importer import ImportOptions, ImportReport, Mode, import_table
from tier_lookup.service import TierLookup
from tier_lookup.store import TableBusy, TierStore

AT = "2026-11-10T10:00"
HOTLINE = str(Path(sys.executable).parent / "hotline")


async def load(store: TierStore, policy: Policy, table: str, text: str, **options: object) -> ImportReport:
    return await import_table(store, table, text.encode(), f"{table}.csv", row_context(policy), ImportOptions(**options))  # type: ignore[arg-type]


def numbers_csv(header: str, count: int, start: int = 13_800_000_000, suffix: str = "") -> str:
    return header + "\n" + "".join(f"{start + i}{suffix}\n" for i in range(count))


async def test_lookup_finds_every_table_in_one_identity(store: TierStore, policy: Policy) -> None:
    await load(store, policy, "highend", "number,arpu\n13800000001,420\n")
    await load(store, policy, "rural", "number,name,station\n13800000001,王,石门\n13800000002,李,横峰\n")
    await load(store, policy, "brand", "number,brand\n13800000001,easyown\n13800000002,mzone\n")
    await load(store, policy, "redlist", "number\n13800000002\n")
    lookup = TierLookup(store, policy, budget_s=1.0)
    first = await lookup.identify("+86 138 0000 0001", local(policy, AT))
    assert (first.tier, first.brand, first.level) == ("highend", "easyown", "highend_easyown")
    assert first.matched == ("brand", "highend", "rural")
    second = await lookup.identify("13800000002", local(policy, AT))
    assert (second.tier, second.name, second.redlist) == ("rural", "李", True)
    assert second.greeting == "尊敬的李站长,你好,有什么可以帮到您"
    assert (await lookup.identify("13900000000", local(policy, AT))).matched == ()


async def test_withheld_caller_never_touches_redis(redis: Redis, store: TierStore, policy: Policy) -> None:
    lookup = TierLookup(store, policy, budget_s=1.0)
    before = (await redis.info("stats"))["total_commands_processed"]
    identity = await lookup.identify("anonymous", local(policy, AT))
    after = (await redis.info("stats"))["total_commands_processed"]
    assert identity.tier == "normal"
    assert not identity.degraded
    assert after - before == 1  # only our own INFO call


async def test_bad_rows_refuse_the_whole_file_by_default(store: TierStore, policy: Policy) -> None:
    await load(store, policy, "highend", "number\n13800000001\n")
    report = await load(store, policy, "highend", "number\n13800000002\nbogus\n")
    assert not report.ok
    assert "1 bad row" in report.refused
    assert (report.rows_read, report.applied, report.rejected) == (2, 0, 1)
    lookup = TierLookup(store, policy, budget_s=1.0)
    assert (await lookup.identify("13800000001")).tier == "highend"  # old table untouched
    assert (await lookup.identify("13800000002")).tier == "normal"


async def test_skip_bad_applies_the_good_rows(store: TierStore, policy: Policy) -> None:
    report = await load(store, policy, "highend", "number\n13800000002\nbogus\n", skip_bad=True)
    assert report.ok
    assert (report.applied, report.rejected) == (1, 1)
    assert [e.line for e in report.errors] == [3]


async def test_replace_that_shrinks_a_table_needs_consent(store: TierStore, policy: Policy) -> None:
    await load(store, policy, "highend", numbers_csv("number", 100))
    refused = await load(store, policy, "highend", numbers_csv("number", 10))
    assert not refused.ok
    assert "under half" in refused.refused
    assert await store.table_rows("highend") == 100
    allowed = await load(store, policy, "highend", numbers_csv("number", 10), allow_shrink=True)
    assert allowed.ok
    assert await store.table_rows("highend") == 10


async def test_upsert_and_delete_keep_the_rest(store: TierStore, policy: Policy) -> None:
    await load(store, policy, "newsub", "number,activated_at\n13800000001,2026-11-01\n13800000002,2026-11-02\n")
    upsert = await load(store, policy, "newsub", "number,activated_at\n13800000003,2026-11-09\n13800000001,2026-11-05\n",
                        mode=Mode.UPSERT)
    assert upsert.ok
    assert await store.table_rows("newsub") == 3
    rows = await store.lookup_rows("8613800000001")
    assert rows["newsub"]["activated_at"] == str(int(local(policy, "2026-11-05T00:00").timestamp()))
    delete = await load(store, policy, "newsub", "number\n13800000002\n13900000000\n", mode=Mode.DELETE)
    assert delete.ok
    assert delete.applied == 1
    assert await store.table_rows("newsub") == 2
    assert "newsub" not in await store.lookup_rows("8613800000002")


async def test_upsert_cannot_add_columns(store: TierStore, policy: Policy) -> None:
    await load(store, policy, "rural", "number,name\n13800000001,王\n")
    report = await load(store, policy, "rural", "number,name,station\n13800000002,李,横峰\n", mode=Mode.UPSERT)
    assert not report.ok
    assert "column 'station' is not in the live table" in report.refused


async def test_replace_frees_the_old_generation(redis: Redis, store: TierStore, policy: Policy) -> None:
    await load(store, policy, "campus", numbers_csv("number", 2000))
    keys_before = await redis.dbsize()
    await load(store, policy, "campus", numbers_csv("number", 2000, start=13_900_000_000))
    assert await redis.dbsize() == keys_before
    assert await store.lookup_rows("8613800000001") == {}
    assert "campus" in await store.lookup_rows("8613900000001")


async def test_a_concurrent_import_of_the_same_table_is_refused(store: TierStore, policy: Policy) -> None:
    async with store.table_lock("highend"):
        with pytest.raises(TableBusy, match="another import of table highend"):
            await load(store, policy, "highend", "number\n13800000001\n")
    assert (await load(store, policy, "highend", "number\n13800000001\n")).ok


async def test_atomic_replace_under_concurrent_lookups(store: TierStore, policy: Policy) -> None:
    """Every lookup during a big refresh sees the whole old row or the whole new one, never
    nothing; once the new table is seen, the old one never comes back."""
    count = 100_000
    old = "number,arpu\n" + "".join(f"{13_800_000_000 + i},old\n" for i in range(count))
    new = "number,arpu\n" + "".join(f"{13_800_000_000 + i},new\n" for i in range(count))
    assert (await load(store, policy, "highend", old)).ok
    probes = [f"86{13_800_000_000 + i}" for i in range(0, count, 997)]
    seen: list[str] = []
    done = asyncio.Event()

    async def watch() -> None:
        i = 0
        while not done.is_set():
            rows = await store.lookup_rows(probes[i % len(probes)])
            seen.append(rows["highend"]["arpu"] if "highend" in rows else "MISSING")
            i += 1

    watchers = [asyncio.create_task(watch()) for _ in range(8)]
    report = await load(store, policy, "highend", new)
    await asyncio.sleep(0.05)
    done.set()
    await asyncio.gather(*watchers)
    assert report.ok
    assert "MISSING" not in seen
    assert seen.count("old") > 0, "no lookup ran before the switch"
    assert seen.count("new") > 0, "no lookup ran after the switch"
    first_new = seen.index("new")
    # Lookups are issued by 8 tasks, so one lookup issued before the switch may complete just
    # after another saw "new"; beyond that window, "old" must not reappear.
    assert "old" not in seen[first_new + 8 :]


async def test_killed_replace_leaves_the_old_table_and_is_cleaned_up(
    redis_server: RedisServer, redis: Redis, store: TierStore, policy: Policy, tmp_path: Path
) -> None:
    """An import killed with SIGKILL half-way through writing: the old table keeps serving,
    the lock names the dead holder, and the next import removes the half-built generation."""
    assert (await load(store, policy, "highend", "number,arpu\n13800000001,old\n")).ok
    keys_before = await redis.dbsize()
    big = tmp_path / "big.csv"
    big.write_text("number,arpu\n" + "".join(f"{13_810_000_000 + i},new\n" for i in range(400_000)))
    env = {**os.environ, "HOTLINE_REDIS_URL": redis_server.url, "HOTLINE_REDIS_PREFIX": "test"}
    proc = await asyncio.create_subprocess_exec(HOTLINE, "tiers", "import", "highend", str(big), env=env,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(3000):
            if await redis.hlen(store.keys.table_staging("highend")) and await redis.dbsize() > keys_before + 50:
                break
            await asyncio.sleep(0.005)
        else:
            pytest.fail("the import never started writing")
        proc.kill()
    finally:
        await proc.wait()
    assert (await store.lookup_rows("8613800000001"))["highend"] == {"arpu": "old"}
    assert "highend" not in await store.lookup_rows("8613810000001")
    with pytest.raises(TableBusy, match="hotline tiers unlock highend"):
        await load(store, policy, "highend", "number,arpu\n13800000001,next\n")
    assert await store.unlock("highend")
    assert (await load(store, policy, "highend", "number,arpu\n13800000001,next\n")).ok
    assert await redis.dbsize() == keys_before
    assert (await store.lookup_rows("8613800000001"))["highend"] == {"arpu": "next"}


async def test_stats_report_rows_and_memory(store: TierStore, policy: Policy) -> None:
    await load(store, policy, "highend", numbers_csv("number,arpu", 5000, suffix=",400"))
    [stats] = await store.stats()
    assert (stats.table, stats.rows) == ("highend", 5000)
    assert 0 < stats.bytes_per_row < 48


async def test_import_file_path_in_report(tmp_path: Path, store: TierStore, policy: Policy) -> None:
    report = await load(store, policy, "campus", "number\n13800000001\n")
    assert report.source == "campus.csv"
    assert "applied" in report.summary()


def big_file(path: Path, rows: int, extra: dict[int, str] | None = None) -> Path:
    """A highend file of several read blocks (tier_lookup.csvfile.BLOCK_BYTES); `extra` puts
    other lines after the given row indexes."""
    extra = extra or {}
    with path.open("w", encoding="utf-8") as out:
        out.write("number,arpu\n")
        for i in range(rows):
            out.write(f"{13_800_000_000 + i},{400 + i % 7}\n")
            if i in extra:
                out.write(extra[i])
    assert path.stat().st_size > 2 * BLOCK_BYTES, "the test needs a file of several blocks"
    return path


async def staged_left(redis: Redis, store: TierStore) -> int:
    return int(await redis.hlen(store.keys.table_staging("highend")))


async def test_a_replace_streams_and_a_conflict_blocks_apart_refuses_it(
        redis: Redis, store: TierStore, policy: Policy, tmp_path: Path) -> None:
    """The first row of a number in the first block, the same number with other data near the
    end: refused, both lines named, the live table and Redis's keys as they were."""
    assert (await load(store, policy, "highend", "number,arpu\n13800000001,old\n")).ok
    keys_before = await redis.dbsize()
    rows = 600_000
    path = big_file(tmp_path / "highend.csv", rows, {rows - 10: "13800000005,999\n", rows - 5: "13800000006,406\n"})
    report = await import_table(store, "highend", path, str(path), row_context(policy), ImportOptions())
    assert not report.ok
    assert "1 bad row(s)" in report.refused
    conflict_line = rows - 10 + 3  # header, then row i on line i + 2, the extra line after it
    assert [e.located("highend.csv") for e in report.errors] == [
        f"highend.csv:{conflict_line}: number 8613800000005 already appears on line 7 with different data"]
    assert report.duplicates == 1  # 13800000006,406 repeats line 8 exactly
    assert report.rows_read == rows + 2
    assert (await store.lookup_rows("8613800000001"))["highend"] == {"arpu": "old"}
    assert "highend" not in await store.lookup_rows("8613800000002")
    assert await redis.dbsize() == keys_before, "the staged generation was dropped"
    assert await staged_left(redis, store) == 0


async def test_a_streamed_replace_with_skip_bad_keeps_the_first_row_of_a_number(
        redis: Redis, store: TierStore, policy: Policy, tmp_path: Path) -> None:
    rows = 600_000
    path = big_file(tmp_path / "highend.csv", rows, {rows - 10: "13800000005,999\n", 300_000: "bogus,1\n"})
    report = await import_table(store, "highend", path, str(path), row_context(policy),
                                ImportOptions(skip_bad=True))
    assert report.ok, report.refused
    assert (report.applied, report.rejected) == (rows, 2)
    assert [e.line for e in report.errors] == [300_003, rows - 10 + 4]  # in file order, the conflict last
    assert (await store.lookup_rows("8613800000005"))["highend"] == {"arpu": "405"}
    assert (await store.lookup_rows(f"86{13_800_000_000 + rows - 1}"))["highend"] == {"arpu": str(400 + (rows - 1) % 7)}
    [stats] = await store.stats()
    assert stats.rows == rows
    assert await staged_left(redis, store) == 0


async def test_a_bad_row_in_the_last_block_leaves_nothing_behind(
        redis: Redis, store: TierStore, policy: Policy, tmp_path: Path) -> None:
    assert (await load(store, policy, "highend", "number,arpu\n13800000001,old\n")).ok
    keys_before = await redis.dbsize()
    path = tmp_path / "highend.csv"
    big_file(path, 600_000)
    with path.open("a", encoding="utf-8") as out:
        out.write("13899999999")  # truncated: no value, no line end
    report = await import_table(store, "highend", path, str(path), row_context(policy), ImportOptions())
    assert not report.ok
    assert [e.line for e in report.errors] == [600_002]
    assert "is the file truncated?" in report.errors[0].reason
    assert (await store.lookup_rows("8613800000001"))["highend"] == {"arpu": "old"}
    assert await redis.dbsize() == keys_before


async def test_a_streamed_replace_tells_how_far_it_has_read_and_written(
        store: TierStore, policy: Policy, tmp_path: Path) -> None:
    path = big_file(tmp_path / "highend.csv", 300_000)
    told: list[tuple[str, int, int]] = []
    report = await import_table(store, "highend", path, str(path), row_context(policy), ImportOptions(),
                                lambda phase, done, total: told.append((phase, done, total)))
    assert report.ok
    reading = [(done, total) for phase, done, total in told if phase == "reading"]
    writing = [(done, total) for phase, done, total in told if phase == "writing"]
    size = path.stat().st_size
    assert len(reading) >= 3  # a block at a time
    assert all(total == size for _, total in reading)
    assert [done for done, _ in reading] == sorted(done for done, _ in reading)
    assert reading[-1][0] == size
    assert writing[-1][0] == writing[-1][1] >= 1
    assert told.index(("writing", *writing[0])) > told.index(("reading", *reading[-1]))
