"""docker/: the production compose file and images, checked as far as this machine allows.

Containers cannot run here (the runtime may not set resource limits), so nothing is built or
started: the compose file is validated against the Compose Specification (compose-spec, after
YAML's own anchors and merges are resolved as Compose does), and what it names is checked
against the repository: the Dockerfiles and what they copy, the settings it passes, the
Asterisk configuration it renders, loopback-only ports, and the topology itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

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
    unknown = [key for key in passed if key.removeprefix("HOTLINE_").lower() not in names]
    assert not unknown, unknown


@pytest.mark.parametrize("side", ["a", "b"])
def test_the_asterisk_configuration_it_renders(compose: dict[str, Any], side: str, tmp_path: Path) -> None:
    command = compose["services"][f"asterisk-{side}-config"]["command"]
    assert command[:2] == ["asterisk", "render"]
    target = command.index("--target")
    args = [*command[:target], "--target", str(tmp_path), *command[target + 2:]]
    done = subprocess.run([HOTLINE, *args], env={**os.environ, "HOTLINE_AMI_SECRET": "x"}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "AGI(hagi://agi.hotline.internal/ivr," in (tmp_path / "extensions.conf").read_text()
    assert f"systemname = asterisk-{side}" in (tmp_path / "asterisk.conf").read_text()


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


def test_the_sms_gateway_password_is_said_to_match_on_both_sides() -> None:
    conf = (DOCKER / "kannel" / "kannel.conf").read_text()
    env = (DOCKER / "hotline.env.example").read_text()
    assert "HOTLINE_SMS_PASSWORD in docker/hotline.env" in conf
    assert "docker/kannel/kannel.conf" in env
