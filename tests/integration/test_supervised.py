"""Background work against real input that once stopped it, through `hotline serve`: a scripted
AMI peer sends a QueueStatus the bridge cannot read (the bridge fails, is named by /readyz while
down, counted in /metrics, logged once with its traceback, and is back within its backoff with
the desks staffed); an unreadable roster entry and a flow file nested too deeply are refused by
name, and the loops that met them go on."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from ami_bridge.roster import Roster, parse_roster
from harness.ami_peer import Message, ScriptedAmi
from harness.procs import Managed, free_tcp_port, tcp_listening
from harness.redis_server import RedisServer
from harness.waiting import until
from ivr_flows.validate import shipped_flows
from tests.integration.test_monitor_http import HOTLINE, TOKEN, cli, get, scrape

ROSTER = """agent_id,name,interface,skills,tenure_start,satisfaction,first_contact_resolution
agent1,李娜,PJSIP/agent1,billing;vip,2023-03-01,97%,90%
agent2,王芳,PJSIP/agent2,billing,2022-08-15,96%,88%
"""


def queue_status(asked: int) -> list[Message]:
    """The first answer carries a member whose penalty is not a number (what a broken or a newer
    Asterisk might send); later answers are well formed, with nobody in any queue yet."""
    if asked == 1:
        return [{"Event": "QueueMember", "Queue": "general", "StateInterface": "PJSIP/agent9", "Penalty": "high",
                 "Membership": "dynamic", "Status": "1", "Paused": "0"}]
    return []


class Serve:
    def __init__(self, run_dir: Path, redis_url: str, **env: str):
        self.http_port = free_tcp_port()
        self.process = Managed("hotline serve", run_dir / "serve.pid", run_dir / "serve.log")
        self.env = {**os.environ, "HOTLINE_REDIS_URL": redis_url, "HOTLINE_AGI_PORT": str(free_tcp_port()),
                    "HOTLINE_HTTP_PORT": str(self.http_port), "HOTLINE_METRICS_TOKEN": TOKEN,
                    "HOTLINE_LOG_FORMAT": "json", "HOTLINE_RESTART_BACKOFF_S": "1.5", **env}
        self.base = f"http://127.0.0.1:{self.http_port}"

    def lines(self, event: str) -> list[dict[str, object]]:
        found = []
        for line in self.process.log_file.read_text().splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                found.append(json.loads(line))
        return found


@pytest.fixture
async def roster(own_redis: RedisServer) -> None:
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    agents, _ = parse_roster(ROSTER)
    await Roster(redis, "hl").replace_all(agents)
    await redis.aclose()


async def test_the_ami_bridge_comes_back_after_a_reply_it_cannot_read(own_redis: RedisServer, roster: None,
                                                                      tmp_path: Path) -> None:
    peer = ScriptedAmi(queue_status)
    port = await peer.start()
    serve = Serve(tmp_path, own_redis.url, HOTLINE_AMI_PORT=str(port), HOTLINE_AMI_SECRET="x",
                  HOTLINE_DESK_RECONCILE_S="60", HOTLINE_RESTART_BACKOFF_S="4")
    serve.process.start([HOTLINE, "serve"], env=serve.env)
    try:
        async with aiohttp.ClientSession() as session:
            # Down during its backoff, and named: by /readyz and as an alarm (board, /metrics, status).
            await until(lambda: tcp_listening(serve.http_port), "the pages to listen", 20)
            down = await until(lambda: _not_ready(session, serve.base), "/readyz to name the bridge", 20)
            assert "ami bridge restarting (ValueError: invalid literal for int() with base 10: 'high')" in down
            alarm = 'hotline_alarm_active{kind="component_down",subject="ami bridge"}'
            await until(lambda: _sample(session, serve.base, alarm, 1.0), "the board's alarm on the bridge", 3.5)
            # Back within its backoff, and the desks it failed to staff are staffed: nothing lost.
            await until(lambda: peer.sent("QueueAdd"), "the bridge to staff the queues after its restart", 15)
            assert peer.status_asked >= 2
            assert peer.logins >= 2
            assert {a["Interface"] for a in peer.sent("QueueAdd")} == {"PJSIP/agent1", "PJSIP/agent2"}
            assert await until(lambda: _ready(session, serve.base), "/readyz to be ready again", 10)
            await until(lambda: _sample(session, serve.base, alarm, 0.0), "the alarm to clear", 5)
            samples = await scrape(session, serve.base)
            assert samples['hotline_component_restarts_total{component="ami bridge"}'] == 1.0
            assert samples['hotline_component_up{component="ami bridge"}'] == 1.0
        [failed] = serve.lines("component failed; restarting")
        assert failed["component"] == "ami bridge"
        assert "Traceback" in str(failed["exception"])
        assert "read_members" in str(failed["exception"]) or "apply" in str(failed["exception"])
    finally:
        serve.process.stop()
        await peer.stop()


async def test_a_flow_file_nested_too_deeply_is_refused_and_the_reload_listener_keeps_listening(
        own_redis: RedisServer, tmp_path: Path) -> None:
    """What killed the listener for good (RecursionError on a file nested 5,000 deep) is now a
    refused reload like any broken file: the running flows keep serving, the next reload works."""
    flows = tmp_path / "flows"
    shutil.copytree(shipped_flows(), flows)
    serve = Serve(tmp_path, own_redis.url, HOTLINE_FLOWS_DIR=str(flows))
    serve.process.start([HOTLINE, "serve"], env=serve.env)
    try:
        async with aiohttp.ClientSession() as session:
            await until(lambda: tcp_listening(serve.http_port), "the pages to listen", 20)
            await until(lambda: _ready(session, serve.base), "hotline serve to be ready", 20)
            (flows / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
            refused = cli(own_redis.url, "flows", "reload")
            assert refused.returncode == 1
            assert "1 running instance(s) heard it, 1 answered: refused; still serving" in refused.stdout
            [line] = serve.lines("flow reload refused; the running version keeps serving")
            assert any("deep.yaml: nested 5000 levels deep; at most 64" in p for p in line["problems"])  # type: ignore[union-attr]
            (flows / "deep.yaml").unlink()
            again = cli(own_redis.url, "flows", "reload")
            assert again.returncode == 0, again.stdout + again.stderr
            assert "1 running instance(s) heard it, 1 answered: reloaded" in again.stdout
            assert await _ready(session, serve.base)
        assert serve.lines("component failed; restarting") == []
    finally:
        serve.process.stop()


async def _not_ready(session: aiohttp.ClientSession, base: str) -> str | None:
    status, text = await get(session, f"{base}/readyz")
    return text if status == 503 else None


async def _sample(session: aiohttp.ClientSession, base: str, name: str, value: float) -> bool:
    return (await scrape(session, base)).get(name, 0.0) == value


async def _ready(session: aiohttp.ClientSession, base: str) -> bool:
    return (await get(session, f"{base}/readyz"))[0] == 200


async def test_an_unreadable_roster_entry_is_left_out_and_the_desks_are_still_staffed(
        own_redis: RedisServer, roster: None, tmp_path: Path) -> None:
    """What a hand-written `HSET hl:agents zz-bad '{"agent_id":"zz-bad"}'` did: the bridge died on
    it at every reconcile. Now the entry is named in the log once and the others are seated."""
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    await redis.hset(Roster(redis, "hl").key, "zz-bad", '{"agent_id": "zz-bad"}')
    await redis.aclose()
    peer = ScriptedAmi(lambda _asked: [])
    port = await peer.start()
    serve = Serve(tmp_path, own_redis.url, HOTLINE_AMI_PORT=str(port), HOTLINE_AMI_SECRET="x",
                  HOTLINE_DESK_RECONCILE_S="0.5")
    serve.process.start([HOTLINE, "serve"], env=serve.env)
    try:
        await until(lambda: peer.sent("QueueAdd"), "the bridge to staff the queues", 20)
        await until(lambda: peer.status_asked >= 3, "two more reconciles", 10)
        assert {a["Interface"] for a in peer.sent("QueueAdd")} == {"PJSIP/agent1", "PJSIP/agent2"}
        [unreadable] = serve.lines("roster entry unreadable; left out until it is mended (hotline agents set/remove)")
        assert (unreadable["agent"], unreadable["reason"]) == ("zz-bad", "the field 'name' is missing")
        assert serve.lines("component failed; restarting") == []
        assert peer.logins == 1
    finally:
        serve.process.stop()
        await peer.stop()
