"""The `hotline` console command as an operator runs it, against the test redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.procs import free_tcp_port
from harness.redis_server import RedisServer

HOTLINE = str(Path(sys.executable).parent / "hotline")


def run(redis_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "HOTLINE_REDIS_URL": redis_url, "HOTLINE_REDIS_PREFIX": "cli", **(env or {})}
    return subprocess.run([HOTLINE, *args], capture_output=True, text=True, env=environ, timeout=60, check=False)


async def test_import_then_lookup_json(redis_server: RedisServer, redis: object, tmp_path: Path) -> None:
    rural = tmp_path / "rural.csv"
    rural.write_text("number,name,station\n13800000004,王,石门站\n", encoding="utf-8")
    brand = tmp_path / "brand.csv"
    brand.write_text("number,brand\n13800000004,easyown\n", encoding="utf-8")
    for table, path in (("rural", rural), ("brand", brand)):
        done = run(redis_server.url, "tiers", "import", table, str(path))
        assert done.returncode == 0, done.stderr
        assert "rows read 1, applied 1, rejected 0" in done.stdout
    looked = run(redis_server.url, "tiers", "lookup", "+86 138 0000 0004", "--json")
    assert looked.returncode == 0, looked.stderr
    data = json.loads(looked.stdout)
    assert data["number"] == "8613800000004"
    assert (data["tier"], data["label"], data["brand"], data["level"]) == ("rural", "农村", "easyown", "ordinary_easyown")
    assert data["queue_priority"] == 10
    assert data["skill_chain"] == ["general"]
    assert data["greeting"] == "尊敬的王站长,你好,有什么可以帮到您"
    assert data["matched"] == ["brand", "rural"]
    assert data["degraded"] is False
    human = run(redis_server.url, "tiers", "lookup", "13800000004")
    assert "tier: rural (农村)" in human.stdout
    stats = run(redis_server.url, "tiers", "stats")
    assert stats.returncode == 0
    assert "rural" in stats.stdout
    assert "+08:00" in stats.stdout  # the operator's time, as the rest of what a person reads
    assert "brand" in stats.stdout


async def test_lookup_at_a_given_time(redis_server: RedisServer, redis: object, tmp_path: Path) -> None:
    newsub = tmp_path / "newsub.csv"
    newsub.write_text("number,activated_at\n13800000005,2026-11-01\n", encoding="utf-8")
    assert run(redis_server.url, "tiers", "import", "newsub", str(newsub)).returncode == 0
    inside = json.loads(run(redis_server.url, "tiers", "lookup", "13800000005", "--json", "--at", "2026-11-30T23:59:59").stdout)
    after = json.loads(run(redis_server.url, "tiers", "lookup", "13800000005", "--json", "--at", "2026-12-01T00:00:00").stdout)
    assert (inside["tier"], after["tier"]) == ("newsub", "normal")
    bad = run(redis_server.url, "tiers", "lookup", "13800000005", "--at", "someday")
    assert bad.returncode == 2
    assert "--at 'someday' is not an ISO-8601" in bad.stderr


async def test_bad_rows_are_listed_and_the_import_refused(redis_server: RedisServer, redis: object, tmp_path: Path) -> None:
    path = tmp_path / "highend.csv"
    path.write_text("number,arpu\n13800000001,400\nxyz,380\n13800000003,1,2\n", encoding="utf-8")
    done = run(redis_server.url, "tiers", "import", "highend", str(path))
    assert done.returncode == 1
    assert f"{path}:3: number: 'xyz' is not a valid subscriber number" in done.stderr
    assert f"{path}:4: expected 2 fields, found 3" in done.stderr
    assert "REFUSED, nothing changed" in done.stdout
    assert "rows read 3, applied 0, rejected 2" in done.stdout
    skipped = run(redis_server.url, "tiers", "import", "highend", str(path), "--skip-bad")
    assert skipped.returncode == 0
    assert "applied 1, rejected 2" in skipped.stdout


async def test_unreadable_file_and_redis_down(redis_server: RedisServer, tmp_path: Path) -> None:
    missing = run(redis_server.url, "tiers", "import", "highend", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    down_url = f"redis://127.0.0.1:{free_tcp_port()}/0"
    path = tmp_path / "h.csv"
    path.write_text("number\n13800000001\n")
    down = run(down_url, "tiers", "import", "highend", str(path))
    assert down.returncode == 3
    assert "cannot reach Redis" in down.stderr
    degraded = json.loads(run(down_url, "tiers", "lookup", "13800000001", "--json").stdout)
    assert (degraded["tier"], degraded["degraded"]) == ("normal", True)


def test_policy_check(tmp_path: Path) -> None:
    good = run("redis://127.0.0.1:1/0", "policy", "check")
    assert good.returncode == 0
    assert "OK" in good.stdout
    bad = tmp_path / "policy.yaml"
    bad.write_text("timezone: Mars/Base\n", encoding="utf-8")
    done = run("redis://127.0.0.1:1/0", "policy", "check", str(bad))
    assert done.returncode == 2
    assert f"{bad}:1:1: timezone: unknown time zone 'Mars/Base'" in done.stderr
    assert "tiers: required key is missing" in done.stderr


def test_logs_mask_subscriber_numbers(tmp_path: Path) -> None:
    down_url = f"redis://127.0.0.1:{free_tcp_port()}/0"
    done = run(down_url, "--log-format", "json", "tiers", "lookup", "13800000001")
    line = next(json.loads(x) for x in done.stderr.splitlines() if x.startswith("{"))
    assert line["caller"] == "86138****0001"
    assert "13800000001" not in done.stderr


async def test_a_bad_at_is_a_clear_usage_error_in_every_command(redis_server: RedisServer, redis: object) -> None:
    for command in (["tiers", "lookup", "13800000004", "--at", "next tuesday"],
                    ["agents", "desks", "--at", "next tuesday"],
                    ["flows", "simulate", "--caller", "13800000004", "--at", "next tuesday"]):
        done = run(redis_server.url, *command)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.strip() == ("hotline: --at 'next tuesday' is not an ISO-8601 date-time "
                                       "(e.g. 2026-11-30T10:00)"), command
        assert "Traceback" not in done.stderr


async def test_a_settings_file_points_the_cli_at_a_stack(redis_server: RedisServer, redis: object,
                                                         tmp_path: Path) -> None:
    # What `make up` writes and `.run/env` points HOTLINE_CONFIG at: no other option needed.
    settings = tmp_path / "hotline.yaml"
    settings.write_text(json.dumps({"redis_url": redis_server.url, "redis_prefix": "cli"}))
    done = run_configured(settings, "agents", "list")
    assert done.returncode == 0, done.stderr
    unreachable = settings.with_name("down.yaml")
    unreachable.write_text(json.dumps({"redis_url": f"redis://127.0.0.1:{free_tcp_port()}/0"}))
    done = run_configured(unreachable, "agents", "list")
    assert done.returncode == 3
    assert "cannot reach Redis" in done.stderr


def run_configured(settings: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with nothing but HOTLINE_CONFIG set, as `.run/env` leaves it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")} | {"HOTLINE_CONFIG": str(settings)}
    return subprocess.run([HOTLINE, *args], capture_output=True, text=True, env=environ, timeout=60, check=False)


async def test_a_roster_import_that_would_empty_or_gut_the_roster_is_refused(redis_server: RedisServer, redis: object,
                                                                              tmp_path: Path) -> None:
    head = "agent_id,name,interface,skills,tenure_start,satisfaction,first_contact_resolution\n"
    full = tmp_path / "agents.csv"
    full.write_text(head + "".join(f"a{i},甲,PJSIP/a{i},,2022-01-01,99%,95%\n" for i in range(6)), encoding="utf-8")
    assert run(redis_server.url, "agents", "import", str(full)).returncode == 0
    empty = tmp_path / "empty.csv"
    empty.write_text(head)
    done = run(redis_server.url, "agents", "import", str(empty))
    assert done.returncode == 1
    assert "no agents in the file" in done.stdout
    short = tmp_path / "short.csv"
    short.write_text(head + "a0,甲,PJSIP/a0,,2022-01-01,99%,95%\n", encoding="utf-8")
    done = run(redis_server.url, "agents", "import", str(short))
    assert done.returncode == 1
    assert "1 agents would replace 6" in done.stdout
    assert run(redis_server.url, "agents", "import", str(short), "--allow-shrink").returncode == 0
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes((head + "a0,王芳,PJSIP/a0,,2022-01-01,99%,95%\n").encode("gbk"))
    done = run(redis_server.url, "agents", "import", str(gbk))
    assert done.returncode == 2
    assert "(line 2): not utf-8 text; save it as UTF-8 or name its encoding with --encoding" in done.stderr
    assert run(redis_server.url, "agents", "import", str(gbk), "--encoding", "gbk").returncode == 0
    listed = run(redis_server.url, "agents", "list").stdout
    assert "王芳" in listed


def test_whatif_reads_the_live_roster(redis_server: RedisServer, redis: object) -> None:
    """Without --roster or --agents, a what-if runs on the roster the hotline is using."""
    demo = Path(__file__).resolve().parents[2] / "demo"
    imported = run(redis_server.url, "agents", "import", str(demo / "agents.csv"))
    assert imported.returncode == 0, imported.stderr
    done = run(redis_server.url, "whatif", "--traffic", str(demo / "whatif" / "demo-hour.yaml"), "--replications", "3",
               "--format", "json-full")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sum(desk["agents"] for desk in result["desks"]) == 4
    assert {level["level"] for level in result["levels"]} == {"gotone_vip", "highend_easyown", "campus",
                                                              "ordinary_easyown"}
    empty = run(redis_server.url, "whatif", "--traffic", str(demo / "whatif" / "demo-hour.yaml"),
                env={"HOTLINE_REDIS_PREFIX": "no-roster-here"})
    assert empty.returncode == 2
    assert "the roster is empty" in empty.stderr


def test_careless_arguments_get_one_clear_line_never_a_traceback(
        redis_server: RedisServer, records_db: tuple[str, object], tmp_path: Path) -> None:
    database = {"HOTLINE_DATABASE_URL": records_db[0]}
    probes = [
        (("agents", "--help"), None, 0, ""),
        (("report", "--to", "9999-12-31"), database, 2, "--to 9999-12-31: a day from 2000-01-01 to 2999-12-31"),
        (("report", "--from", "2026-11-30", "--to", "2026-11-30", "--output", "/dev/full"), database, 2,
         "cannot write /dev/full: No space left on device"),
        (("report", "--from", "2026-11-30", "--to", "2026-11-30", "--output", str(tmp_path)), database, 2,
         f"cannot write {tmp_path}: Is a directory"),
        (("report", "--from", "2026-11-30", "--to", "2026-11-30", "--output", str(tmp_path / "no" / "r.csv")),
         database, 2, f"cannot write {tmp_path / 'no' / 'r.csv'}: No such file or directory"),
        (("whatif", "--traffic", "demo/whatif/demo-hour.yaml", "--agents", "30", "--plot", str(tmp_path / "no" / "p.png")),
         None, 2, f"the directory {tmp_path / 'no'} does not exist"),
    ]
    for args, env, code, message in probes:
        done = run(redis_server.url, *args, env=env)
        assert "Traceback" not in done.stderr, (args, done.stderr[-1500:])
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    done = run(redis_server.url, "flows", "validate", str(deep))
    assert (done.returncode, "Traceback" in done.stderr) == (1, False), done.stderr[-800:]
    assert "nested 5000 levels deep; at most 64" in done.stdout + done.stderr


async def test_agents_secrets_from_a_file_are_all_set_or_none(redis_server: RedisServer, redis: object,
                                                              tmp_path: Path) -> None:
    roster = tmp_path / "agents.csv"
    roster.write_text((Path(__file__).parents[2] / "demo" / "agents.csv").read_text(encoding="utf-8"), encoding="utf-8")
    assert run(redis_server.url, "agents", "import", str(roster)).returncode == 0
    secrets = tmp_path / "agent_screens"
    for text, code, why in [
        ("agent1,long-enough-1\nagent2\n", 2, f"{secrets}:2: expected agent_id,secret"),
        ("# first run\nagent1,short\n", 2, f"{secrets}:2: agent1's secret needs at least 8 characters"),
        ("agent1,long-enough-1\nnobody,long-enough-2\n", 1, "not on the roster: nobody"),
    ]:
        secrets.write_text(text)
        done = run(redis_server.url, "agents", "secret", "--from-file", str(secrets))
        assert (done.returncode, done.stdout) == (code, ""), done.stderr
        assert why in done.stderr
    assert run(redis_server.url, "agents", "secret").returncode == 2  # neither an agent nor a file
    secrets.write_text("agent1,long-enough-1\n\nagent2 , long-enough-2\n")
    done = run(redis_server.url, "agents", "secret", "--from-file", str(secrets))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["agent1: secret set", "agent2: secret set"]
