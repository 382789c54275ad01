"""End-to-end call rate: SIPp calls per second through real Asterisk and `hotline serve`.

Two dialplans in the same Asterisk, the same run: one answers, runs the FastAGI entry and hangs
up; the other answers and hangs up. For each, rising call rates run for a fixed time; the
highest rate with no failed call is reported, and the ratio tells what the bridge costs.
Queues and agents are left out on purpose: two SIPp agents cannot take hundreds of calls a second.

    .venv/bin/python bench/bench_e2e.py [--seconds 10] [--rates 100,200,300,400,500,600,800,1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asterisk_conf.render import Deployment
from harness.asterisk import Asterisk, default_root, ensure_root
from harness.procs import Managed, free_tcp_port, free_udp_port, tcp_listening
from harness.redis_server import RedisServer
from harness.sipp import load_scenario, require_sipp

ROOT = Path(__file__).resolve().parents[1]

# Appended to the benchmark instance's own [from-caller] only; the shipped dialplan has neither.
BENCH_DIALPLAN = """
[from-caller](+)
exten => 20086,1,Answer()
 same => n,AGI(agi://127.0.0.1:@@PORT@@/entry,${CHANNEL(linkedid)})
 same => n,Hangup()
exten => 20087,1,Answer()
 same => n,Hangup()
"""



def run_rate(sip_port: int, exten: str, rate: int, seconds: float, workdir: Path) -> tuple[int, int, float]:
    """(calls placed, calls failed, seconds taken) at `rate` calls per second."""
    total = int(rate * seconds)
    stats = workdir / f"stat-{exten}-{rate}.csv"
    started = time.monotonic()
    done = subprocess.run(
        [require_sipp(), "-sf", str(workdir / "caller.xml"), "-inf", str(workdir / "callers.csv"),
         "-s", exten, "-r", str(rate), "-m", str(total), "-l", str(max(50, rate * 4)),
         "-i", "127.0.0.1", "-ci", "127.0.0.1", "-p", str(free_udp_port()), "-mi", "127.0.0.1", "-mp", "34000",
         "-nostdin", "-timeout", f"{int(seconds * 4) + 30}s", "-timeout_error",
         "-trace_stat", "-stf", str(stats), "-recv_timeout", "10000", f"127.0.0.1:{sip_port}"],
        cwd=workdir, capture_output=True, text=True, check=False,
    )
    elapsed = time.monotonic() - started
    failed = total
    if stats.exists():
        header, *rows = [line.split(";") for line in stats.read_text().splitlines() if line.strip()]
        last = dict(zip(header, rows[-1], strict=False)) if rows else {}
        failed = int(last.get("FailedCall(C)", total))
        successful = int(last.get("SuccessfulCall(C)", 0))
        failed = max(failed, total - successful)
    elif done.returncode == 0:
        failed = 0
    return total, failed, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="100,200,300,400,500,600,800,1000")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    root = ensure_root(default_root())
    with tempfile.TemporaryDirectory(prefix="hotline-bench-e2e-") as tmp:
        work = Path(tmp)
        (work / "caller.xml").write_text(load_scenario())
        (work / "callers.csv").write_text("SEQUENTIAL\n" + "".join(f"{13_800_000_001 + i % 6};\n" for i in range(60)))
        redis = RedisServer(work / "redis").start()
        agi_port = free_tcp_port()
        serve = Managed("hotline serve", work / "serve.pid", work / "serve.log")
        env = {**os.environ, "HOTLINE_REDIS_URL": redis.url, "HOTLINE_AGI_PORT": str(agi_port),
               "HOTLINE_LOG_FORMAT": "json"}
        hotline = str(Path(sys.executable).parent / "hotline")
        for table in ("highend", "rural", "brand"):
            subprocess.run([hotline, "tiers", "import", table, str(ROOT / "demo" / f"{table}.csv")], env=env,
                           check=True, capture_output=True)
        sip_port = free_udp_port()
        deployment = Deployment(sip_port=sip_port, agi_port=agi_port, ami_port=free_tcp_port(),
                                ami_secret="bench", rtp_start=21000, rtp_end=23999)
        dialplan = BENCH_DIALPLAN.replace("@@PORT@@", str(agi_port))
        asterisk = Asterisk(root, f"bench-{os.getpid()}", deployment, work, extra_dialplan=dialplan)
        try:
            serve.start([hotline, "serve"], env=env)
            while not tcp_listening(agi_port):
                time.sleep(0.05)
            asterisk.start()
            best: dict[str, float] = {}
            for label, exten in (("with FastAGI entry", "20086"), ("without AGI", "20087")):
                for rate in rates:
                    placed, failed, elapsed = run_rate(sip_port, exten, rate, args.seconds, work)
                    # Reached: calls completed over the time they took, including the last call's tail.
                    reached = placed / elapsed
                    print(f"{label:<20} {rate:>5} calls/s offered: {placed} calls in {elapsed:5.1f} s "
                          f"= {reached:6.1f} calls/s reached, {failed} failed", flush=True)
                    if failed:
                        break
                    best[label] = max(best.get(label, 0.0), reached)
            entries = [line for line in serve.log_file.read_text().splitlines() if '"call entry"' in line]
            degraded = sum('"degraded":true' in line for line in entries)
            print(f"sanity: hotline serve logged {len(entries)} call entries, {degraded} degraded")
            with_agi = best.get("with FastAGI entry", 0)
            without = best.get("without AGI", 0)
            print(f"highest rate reached with no failed call: with FastAGI entry {with_agi:.0f} calls/s, "
                  f"without AGI {without:.0f} calls/s" + (f", ratio {with_agi / without:.2f}" if without else ""))
        finally:
            asterisk.stop(remove_files=True)
            serve.stop()
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
