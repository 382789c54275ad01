"""Several `hotline serve` instances behind one Asterisk, found through DNS SRV records (hagi://).

A real DNS server on loopback (dnsmasq) serves _agi._tcp.agi.hotline.test: instance A at
priority 0, instance B at priority 10. The chroot Asterisk resolves through it. Calls go to A;
A is killed with SIGKILL; the next calls go to B at once (res_agi tries the next record when a
connection is refused), none is left without its entry, and a caller already in the queue
stays there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.asterisk import Asterisk, default_root, ensure_root, srv_deployment
from harness.dns_server import DnsServer, Srv
from harness.procs import Managed, free_tcp_port, free_udp_port, tcp_listening
from harness.redis_server import RedisServer
from harness.sipp import place_call
from harness.waiting import until_sync

HOTLINE = str(Path(sys.executable).parent / "hotline")
NAME = "agi.hotline.test"


@dataclass
class Instance:
    """One `hotline serve`: FastAGI and HTTP only (no AMI bridge, no records database)."""

    label: str
    redis_url: str
    run_dir: Path

    def __post_init__(self) -> None:
        self.agi_port, self.http_port = free_tcp_port(), free_tcp_port()
        self.process = Managed(f"hotline serve {self.label}", self.run_dir / f"serve-{self.label}.pid",
                               self.run_dir / f"serve-{self.label}.log")

    def start(self) -> None:
        env = {**os.environ, "HOTLINE_REDIS_URL": self.redis_url, "HOTLINE_AGI_PORT": str(self.agi_port),
               "HOTLINE_HTTP_PORT": str(self.http_port), "HOTLINE_LOG_FORMAT": "json"}
        proc = self.process.start([HOTLINE, "serve"], env=env)
        def listening() -> bool:
            assert proc.poll() is None, self.process.log_file.read_text()[-2000:]
            return tcp_listening(self.agi_port)

        until_sync(listening, "hotline serve to listen", 20, every=0.05)

    def kill(self) -> None:
        pid = self.process.running_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while tcp_listening(self.agi_port):
            time.sleep(0.01)

    def entries(self) -> list[str]:
        """Unique ids of the calls this instance entered, from its log."""
        out = []
        for line in self.process.log_file.read_text().splitlines():
            if line.startswith("{") and '"event":"call entry"' in line:
                out.append(json.loads(line)["uniqueid"])
        return out


@dataclass
class Pair:
    a: Instance
    b: Instance
    sip_port: int
    asterisk: Asterisk


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    run_dir = tmp_path_factory.mktemp("scale")
    root = ensure_root(default_root())
    redis = RedisServer(run_dir / "redis").start()
    a, b = Instance("a", redis.url, run_dir), Instance("b", redis.url, run_dir)
    dns = DnsServer(NAME, [Srv("127.0.0.1", a.agi_port, 0), Srv("127.0.0.1", b.agi_port, 10)], run_dir, root)
    sip_port = free_udp_port()
    asterisk = Asterisk(root, f"scale-{os.getpid()}", srv_deployment(sip_port, free_tcp_port(), "scale-secret", NAME),
                        run_dir)
    started = []
    try:
        dns.start()
        started.append(dns.stop)
        for instance in (a, b):
            instance.start()
            started.append(instance.process.stop)
        asterisk.start()
        started.append(lambda: asterisk.stop(remove_files=True))
        yield Pair(a, b, sip_port, asterisk)
    finally:
        for stop in reversed(started):
            stop()
        redis.stop()


async def calls(pair: Pair, count: int, first_media: int, **kw: object) -> list[int]:
    results = await asyncio.gather(*(
        place_call(f"1390000{i:04d}", pair.sip_port, free_udp_port(), first_media + 4 * i, wait_ms=1500,
                   talk_ms=300, **kw)  # type: ignore[arg-type]
        for i in range(count)))
    return [r.returncode for r in results]


async def test_calls_move_to_the_next_instance_when_one_is_killed(pair: Pair) -> None:
    assert await calls(pair, 5, 43000) == [0] * 5
    before_a, before_b = len(pair.a.entries()), len(pair.b.entries())
    assert before_a == 5, "the preferred instance (SRV priority 0) takes the calls while it is up"
    assert before_b == 0
    # A caller waiting in the queue when A dies (no agents here: it waits until it hangs up).
    waiting = asyncio.create_task(place_call("13900009999", pair.sip_port, free_udp_port(), 43900,
                                             digits="0", wait_ms=300, talk_ms=6000))
    await asyncio.sleep(2.0)
    pair.a.kill()
    started = time.monotonic()
    assert await calls(pair, 5, 43100) == [0] * 5
    elapsed = time.monotonic() - started
    assert len(pair.b.entries()) == 5, "every call after the kill entered through B"
    assert len(pair.a.entries()) == before_a + 1  # the waiting caller's entry, before the kill
    assert (await waiting).returncode == 0  # still connected until it hung up itself
    assert elapsed < 6.0  # the five calls (about 2 s each, at once): no wait on the dead instance
    pair.a.start()  # back: it is preferred again
    assert await calls(pair, 2, 43200) == [0] * 2
    assert len(pair.a.entries()) == before_a + 3
