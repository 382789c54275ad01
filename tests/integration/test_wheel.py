"""The wheel is the product: built from the project's files, installed into a fresh virtual
environment outside the checkout, it checks the policy and the flows, renders Asterisk's
configuration and serves a call entry, reading its data files from the installed packages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from harness.agi_peer import environment, play
from harness.procs import free_tcp_port, tcp_listening
from harness.redis_server import RedisServer
from harness.waiting import until

ROOT = Path(__file__).resolve().parents[2]
# Build byproducts and local state that are not the project's files.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".run", "build", "*.egg-info", "__pycache__", ".mypy_cache",
                                     ".ruff_cache", ".pytest_cache", "artifacts", "out", "*.so")
DATA_FILES = (
    "hotline_core/data/policy.yaml",
    "hotline/web/agent.html",
    "tier_lookup/lookup.lua",
    "ivr_flows/flows/hotline.yaml",
    "ivr_flows/flow.schema.json",
    "hotline/whatif/traffic.schema.json",
    "asterisk_conf/queues.conf",
    "asterisk_conf/extensions.conf",
    "hotline/records/migrations/001_call_records.sql",
    "hotline/workorders/migrations/003_work_orders.sql",
)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the fresh environment's bin directory, the wheel)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    # Compiled, as docker/hotline.Dockerfile builds it: the product's call path is mypyc's.
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(work / "dist"), str(source)], capture_output=True, text=True, check=False,
                           env={**os.environ, "HOTLINE_COMPILE": "1"})
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (work / "dist").glob("hotline-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    bin_dir = work / "venv" / "bin"
    # What the image installs: the run-time lock, hashes checked, then the wheel with nothing resolved.
    for args in (["--require-hashes", "-r", str(ROOT / "requirements.lock")], [str(wheel)]):
        done = subprocess.run([str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check", "--no-deps",
                               *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
    checked = subprocess.run([str(bin_dir / "pip"), "check"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, f"requirements.lock lacks what the wheel needs: {checked.stdout}"
    return bin_dir, wheel


def run(bin_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # From a directory that is not the checkout, with nothing of the checkout on the path.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "PYTHON"))}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, check=False,
                          cwd=bin_dir.parent, env={**clean, **(env or {})}, timeout=60)


def test_the_wheel_ships_the_service_and_its_data_but_not_the_harness(installed: tuple[Path, Path]) -> None:
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for data_file in DATA_FILES:
        assert data_file in names, f"{data_file} missing from {wheel.name}"
    assert "hotline/sms/worker.py" in names
    assert not [n for n in names if n.startswith(("harness/", "tests/", "bench/"))]


def test_the_wheel_ships_the_call_path_compiled(installed: tuple[Path, Path]) -> None:
    bin_dir, wheel = installed
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("agi/entry", "agi/session", "hotline_core/redispipe", "tier_lookup/identity"):
        assert f"{module}{suffix}" in names, f"{module} is not compiled in {wheel.name}"
    # The compiled modules need nothing at run time that the wheel does not declare.
    done = run(bin_dir, "python", "-c", "import agi.entry; print(agi.entry.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(suffix), done.stdout


def test_the_installed_packages_are_the_wheels(installed: tuple[Path, Path]) -> None:
    bin_dir, _ = installed
    done = run(bin_dir, "python", "-c", "import hotline_core, asterisk_conf; print(hotline_core.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(bin_dir.parent), done.stdout


def test_policy_flows_and_asterisk_render_work_from_the_install(installed: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, _ = installed
    checked = run(bin_dir, "hotline", "policy", "check")
    assert checked.returncode == 0, checked.stderr
    assert "OK (8 levels" in checked.stdout
    assert "site-packages/hotline_core/data/policy.yaml" in checked.stdout
    flows = run(bin_dir, "hotline", "flows", "validate")
    assert flows.returncode == 0, flows.stderr
    assert "site-packages/ivr_flows/flows: OK, 2 flow(s)" in flows.stdout
    target = tmp_path / "etc"
    rendered = run(bin_dir, "hotline", "asterisk", "render", "--target", str(target), "--set", "SIP_PORT=5099",
                   "--agent", "agent1:agent-secret-1:sip:agent1@127.0.0.1:5071", env={"HOTLINE_AMI_SECRET": "s3cret"})
    assert rendered.returncode == 0, rendered.stderr
    assert "bind = 127.0.0.1:5099" in (target / "pjsip.conf").read_text()
    assert "[hotline-gotone_vip]" in (target / "queues.conf").read_text()


async def test_serve_from_the_install_answers_a_call_entry(installed: tuple[Path, Path],
                                                           redis_server: RedisServer) -> None:
    bin_dir, _ = installed
    agi_port, http_port = free_tcp_port(), free_tcp_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("HOTLINE_", "PYTHON"))},
           "HOTLINE_REDIS_URL": redis_server.url, "HOTLINE_REDIS_PREFIX": "wheel", "HOTLINE_AGI_PORT": str(agi_port),
           "HOTLINE_HTTP_PORT": str(http_port), "HOTLINE_LOG_FORMAT": "json"}
    serve = start_serve(bin_dir, env)
    try:
        def started() -> bool:
            assert serve.poll() is None, "hotline serve exited"
            return tcp_listening(agi_port) and tcp_listening(http_port)

        await until(started, "hotline serve to start", 20, every=0.05)
        result = await play("127.0.0.1", agi_port, environment("ivr", "13800000009", "1732262400.9"),
                            answer=lambda _i, _c: b"200 result=0\n")
        variables = result.variables()
        assert variables["HOTLINE_TIER"] == "normal"
        assert variables["HOTLINE_FLOW_VERSION"]  # the IVR flow ran, from the installed package
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        output, _ = serve.communicate(timeout=15)
    assert serve.returncode == 0, output[-2000:]
    assert b'"compiled":true' in next(line for line in output.splitlines() if b"hotline serving" in line)
    assert b"site-packages/ivr_flows/flows" in output


def start_serve(bin_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(bin_dir / "hotline"), "serve"], cwd=bin_dir.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
