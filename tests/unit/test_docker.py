"""docker/: the production compose file and images, checked as far as this machine allows.

Containers cannot run here (the runtime may not set resource limits), so nothing is built or
started: the compose file is validated against the Compose Specification (compose-spec, after
YAML's own anchors and merges are resolved as Compose does), and what it names is checked
against the repository: the Dockerfiles and what they copy, the settings it passes, the
Asterisk configuration it renders, loopback-only ports, and the topology itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from compose_spec import PyCompose
from redis.asyncio import Redis

from harness.redis_server import RedisServer
from hotline.web.auth import Sessions
from hotline_core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
HOTLINE = str(Path(sys.executable).parent / "hotline")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


def test_the_compose_file_meets_the_compose_specification(compose: dict[str, Any]) -> None:
    parsed = PyCompose.from_json(json.dumps(compose))
    spec = parsed.to_spec()
    parsed.validate()  # networks, volumes, secrets and configs that services name are defined
    assert spec.services is not None


def test_the_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    by_image: dict[str, list[str]] = {}
    for name, service in services.items():
        by_image.setdefault(str(service.get("image", "")).split(":")[0], []).append(name)
    assert sorted(n for n in by_image["hotline"] if n.startswith("hotline-")) == ["hotline-a", "hotline-b"]
    assert sorted(by_image["hotline-asterisk"]) == ["asterisk-a", "asterisk-b"]
    assert sorted(by_image["redis"]) == ["redis-primary", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"]
    assert {"postgres", "kannel", "smsbox", "prometheus", "grafana", "dns"} <= set(services)
    # Each hotline serve bridges its own Asterisk and reads that one's queue_log under its own name.
    for side in ("a", "b"):
        env = services[f"hotline-{side}"]["environment"]
        assert env["HOTLINE_AMI_HOST"] == f"asterisk-{side}"
        assert env["HOTLINE_QUEUE_LOG_SOURCE"] == f"asterisk-{side}"
    # Asterisk finds the hotline serve instances by SRV records of the dns service.
    records = (DOCKER / "dns" / "hotline.conf").read_text()
    assert re.findall(r"srv-host=_agi\._tcp\.agi\.hotline\.internal,(hotline-[ab]),4573", records) == \
        ["hotline-a", "hotline-b"]
    dns_address = services["dns"]["networks"]["hotline"]["ipv4_address"]
    assert all(services[f"asterisk-{side}"]["dns"] == [dns_address] for side in ("a", "b"))


def test_published_ports_are_on_loopback_only(compose: dict[str, Any]) -> None:
    published = [(name, port) for name, service in compose["services"].items() for port in service.get("ports", [])]
    assert published
    assert all(str(port).startswith("127.0.0.1:") for _, port in published), published


def test_every_image_builds_from_files_that_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        build = service.get("build")
        if not build:
            continue
        context = (DOCKER / build["context"]).resolve()
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile}"
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    assert (context / source).exists(), f"{dockerfile.name}: COPY {source} (context {context})"


def test_the_service_image_runs_the_wheel_without_build_tools() -> None:
    stages = (DOCKER / "hotline.Dockerfile").read_text().split("\nFROM ")
    runtime = stages[-1]
    assert "pip install --no-cache-dir --no-index --no-deps /wheels/*.whl" in runtime
    assert "COPY --from=build /wheels /wheels" in runtime
    assert not re.search(r"apt-get install|gcc|build-essential|COPY (hotline|agi|tier_lookup)", runtime)
    assert "USER hotline" in runtime


def test_the_service_image_builds_the_compiled_wheel() -> None:
    # The same build as tests/integration/test_wheel.py runs and checks (no container runs here).
    build = (DOCKER / "hotline.Dockerfile").read_text().split("\nFROM ")[1]  # [0] is the heading comment
    assert re.search(r"HOTLINE_COMPILE=1 pip wheel [^\n]*--no-build-isolation", build)
    assert "gcc" in build
    assert "setup.py" in build


def test_the_service_image_installs_the_locks_and_nothing_resolved() -> None:
    # What CI tested is what the image runs: the locks' releases, hashes checked, no resolution.
    build = (DOCKER / "hotline.Dockerfile").read_text().split("\nFROM ")[1]
    assert "--require-hashes --no-deps -r requirements-build.lock" in build
    assert "--require-hashes --no-deps --wheel-dir /wheels -r requirements.lock" in build
    installs = re.findall(r"pip (?:install|wheel) [^\n]*", build)
    assert installs
    assert all("--no-deps" in line for line in installs), installs


def test_the_settings_it_passes_are_settings(compose: dict[str, Any]) -> None:
    names = set(Settings.model_fields)
    passed = [line.split("=", 1)[0] for line in (DOCKER / "hotline.env.example").read_text().splitlines()
              if line and not line.startswith("#")]
    passed += [key for service in compose["services"].values() for key in service.get("environment", {})
               if key.startswith("HOTLINE_")]
    assert passed
    # HOTLINE_<NAME>_FILE: the setting NAME, read from a secret file.
    unknown = [key for key in passed
               if key.removeprefix("HOTLINE_").lower() not in names
               and key.removeprefix("HOTLINE_").removesuffix("_FILE").lower() not in names]
    assert not unknown, unknown


@pytest.mark.parametrize("side", ["a", "b"])
def test_the_asterisk_configuration_it_renders(compose: dict[str, Any], side: str, tmp_path: Path) -> None:
    command = compose["services"][f"asterisk-{side}-config"]["command"]
    assert command[:2] == ["asterisk", "render"]
    target = command.index("--target")
    secrets = _first_run(tmp_path / "docker")
    args = [a.replace("/run/secrets", str(secrets)) for a in command]
    target = args.index("--target")
    args[target + 1] = str(tmp_path / "etc")
    done = subprocess.run([HOTLINE, *args], env={**os.environ, "HOTLINE_AMI_SECRET_FILE": str(secrets / "ami_secret")},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    etc = tmp_path / "etc"
    assert "AGI(hagi://agi.hotline.internal/ivr," in (etc / "extensions.conf").read_text()
    assert f"systemname = asterisk-{side}" in (etc / "asterisk.conf").read_text()
    assert f"secret = {(secrets / 'ami_secret').read_text()}" in (etc / "manager.conf").read_text()
    # Every agent of the roster has an endpoint its phone registers to, with its own SIP secret.
    pjsip = (etc / "pjsip.conf").read_text()
    phones = dict(line.split(",") for line in (secrets / "agent_phones").read_text().splitlines())
    assert sorted(phones) == ROSTER_IDS
    for name, secret in phones.items():
        assert f"username = {name}\npassword = {secret}\n" in pjsip
        assert f"[{name}]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\n" in pjsip
    assert "member => PJSIP/agent1,0,agent1" in (etc / "queues.conf").read_text()


def test_prometheus_scrapes_both_instances_and_grafana_has_the_dashboard() -> None:
    scrape = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["hotline-a:8088", "hotline-b:8088"]
    dashboard = json.loads((DOCKER / "grafana" / "hotline-dashboard.json").read_text())
    assert dashboard["panels"]



@pytest.mark.parametrize("side", ["a", "b"])
def test_each_asterisk_publishes_the_rtp_range_it_is_rendered_with(compose: dict[str, Any], side: str) -> None:
    command = compose["services"][f"asterisk-{side}-config"]["command"]
    sets = dict(command[i + 1].split("=", 1) for i, word in enumerate(command) if word == "--set")
    rtp = f"{sets['RTP_START']}-{sets['RTP_END']}"
    ports = compose["services"][f"asterisk-{side}"]["ports"]
    assert f"127.0.0.1:{rtp}:{rtp}/udp" in ports  # callers' audio reaches the range rtp.conf names


ROSTER_IDS = sorted(line.split(",")[0] for line in (ROOT / "demo" / "agents.csv").read_text().splitlines()[1:])


def _first_run(docker: Path) -> Path:
    """docker/first-run.sh in a copy of docker/ with the demo roster as data/agents.csv."""
    (docker / "data").mkdir(parents=True)
    (docker / "hotline.env.example").write_text((DOCKER / "hotline.env.example").read_text())
    (docker / "data" / "agents.csv").write_text((ROOT / "demo" / "agents.csv").read_text())
    done = subprocess.run(["sh", str(DOCKER / "first-run.sh"), str(docker)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return docker / "secrets"


def test_first_run_writes_each_secret_once_and_only_what_is_missing(compose: dict[str, Any], tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    secrets = _first_run(docker)
    # Every secret the compose file hands out is written, and none is written anywhere else.
    assert sorted(p.name for p in secrets.iterdir()) == sorted(compose["secrets"])
    assert all(compose["secrets"][name]["file"] == f"./secrets/{name}" for name in compose["secrets"])
    values = {p.name: p.read_text() for p in secrets.iterdir()}
    singles = [v for name, v in values.items() if not name.startswith("agent_")]
    assert all(re.fullmatch(r"[0-9a-f]{32}", v) for v in singles), values
    assert len(set(singles)) == len(singles)
    assert secrets.stat().st_mode & 0o077 == 0  # other users of the host cannot list or read them
    env = (docker / "hotline.env").read_text()
    assert not [v for v in singles if v in env]
    assert "change-me" not in env
    screens = dict(line.split(",") for line in (secrets / "agent_screens").read_text().splitlines())
    assert sorted(screens) == ROSTER_IDS
    # Again, with one more agent on the roster: nothing replaced, one line each added.
    with (docker / "data" / "agents.csv").open("a") as roster:
        roster.write("agent9,新人,PJSIP/agent9,,2026-12-01,,\n")
    done = subprocess.run(["sh", str(DOCKER / "first-run.sh"), str(docker)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    again = {p.name: p.read_text() for p in secrets.iterdir()}
    assert {k: v for k, v in again.items() if not k.startswith("agent_")} == \
        {k: v for k, v in values.items() if not k.startswith("agent_")}
    for name in ("agent_phones", "agent_screens"):
        assert again[name].startswith(values[name])
        assert again[name][len(values[name]):].startswith("agent9,")
    assert "kept     secrets/ami_secret" in done.stdout


def test_every_secret_a_hotline_setting_reads_is_handed_to_the_hotline_containers(compose: dict[str, Any]) -> None:
    files = [line.split("=", 1) for line in (DOCKER / "hotline.env.example").read_text().splitlines()
             if line.startswith("HOTLINE_") and line.split("=", 1)[0].endswith("_FILE")]
    assert {key for key, _ in files} >= {"HOTLINE_DATABASE_PASSWORD_FILE", "HOTLINE_AMI_SECRET_FILE",
                                         "HOTLINE_SMS_PASSWORD_FILE", "HOTLINE_METRICS_TOKEN_FILE"}
    for service in ("hotline-a", "hotline-b", "migrate", "setup"):
        given = set(compose["services"][service]["secrets"])
        assert {path.removeprefix("/run/secrets/") for _, path in files} <= given, service
    settings = dict(line.split("=", 1) for line in (DOCKER / "hotline.env.example").read_text().splitlines()
                    if line.startswith("HOTLINE_"))
    assert urlsplit(settings["HOTLINE_DATABASE_URL"]).password is None  # the password is its file's alone


def test_kannel_reads_its_passwords_from_the_secret_files(tmp_path: Path) -> None:
    (tmp_path / "sms_password").write_text("0a1b2c\n")
    (tmp_path / "kannel_admin_password").write_text("ffee99")
    env = {**os.environ, "KANNEL_TEMPLATE": str(DOCKER / "kannel" / "kannel.conf"), "KANNEL_SECRETS": str(tmp_path),
           "KANNEL_CONF": str(tmp_path / "kannel.conf")}
    done = subprocess.run(["sh", str(DOCKER / "kannel" / "start.sh"), "cat"], env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "\npassword = 0a1b2c\n" in done.stdout
    assert "\nadmin-password = ffee99\n" in done.stdout
    assert not [line for line in done.stdout.splitlines() if "@@" in line and not line.startswith("#")]
    (tmp_path / "sms_password").unlink()
    done = subprocess.run(["sh", str(DOCKER / "kannel" / "start.sh"), "cat"], env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode != 0
    assert f"no secret {tmp_path}/sms_password" in done.stderr
    assert "sms_password" in [s for svc in ("kannel", "smsbox") for s in
                              yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"][svc]["secrets"]]


async def test_the_setup_step_stocks_the_roster_and_the_first_sign_ins(compose: dict[str, Any], tmp_path: Path,
                                                                       redis_server: RedisServer,
                                                                       redis: Redis) -> None:
    """The setup service's own command, run here with /data and /run/secrets pointed at a
    first run's files: afterwards every agent signs in with its screen secret, and the
    supervisor with theirs."""
    secrets = _first_run(tmp_path / "docker")
    service = compose["services"]["setup"]
    assert service["entrypoint"] == ["sh", "-c"]
    assert service["profiles"] == ["setup"]
    script = service["command"][0].replace("$$", "$").replace("/run/secrets", str(secrets)) \
        .replace("/data/", f"{tmp_path / 'docker' / 'data'}/")
    bin_dir = str(Path(HOTLINE).parent)
    env = {**os.environ, **service["environment"], "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "HOTLINE_REDIS_URL": redis_server.url}
    proc = await asyncio.create_subprocess_exec("sh", "-c", script, env=env, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, output.decode()
    sessions = Sessions(redis, "hl")
    try:
        for line in (secrets / "agent_screens").read_text().splitlines():
            agent, secret = line.split(",")
            signed = await sessions.sign_in(agent, secret)
            assert signed is not None, agent
            assert signed[1].role == "agent"
        signed = await sessions.sign_in("supervisor", (secrets / "supervisor_password").read_text())
        assert signed is not None
        assert signed[1].role == "supervisor"
        assert await sessions.sign_in("supervisor", "not-the-secret") is None
    finally:
        sessions.close()
