"""Service settings, layered once: defaults < settings file (+ conf.d/) < environment < command line.

The result is a frozen, validated `Settings`; nothing else in the code reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hotline_core.policy import DEFAULT_POLICY_FILE
from hotline_core.yamlpos import ConfigFileError, Problem, load_yaml

ENV_PREFIX = "HOTLINE_"
CONFIG_ENV = "HOTLINE_CONFIG"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis with Sentinel: the sentinels as "host:port,host:port,..." and the service they watch.
    # The primary's address then comes from them (redis_url still gives the password and db).
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_service: str = Field(default="hotline", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    # An SMS job is accepted once this many replicas hold it (WAIT, at most redis_wait_ms): with
    # a replica, a failover right after the hand-over cannot lose it. 0: no wait (one Redis).
    redis_wait_replicas: int = Field(default=0, ge=0, le=5)
    redis_wait_ms: int = Field(default=100, ge=1, le=5000)
    redis_prefix: str = Field(default="hl", pattern=r"^[A-Za-z0-9_:.-]+$")
    policy_file: Path = DEFAULT_POLICY_FILE
    lookup_budget_ms: int = Field(default=200, ge=1, le=10_000)
    agi_host: str = "127.0.0.1"
    agi_port: int = Field(default=4573, ge=0, le=65535)
    agi_idle_timeout_s: float = Field(default=10.0, gt=0)
    agi_max_connections: int = Field(default=4096, ge=1)
    agi_max_per_peer: int = Field(default=2048, ge=1)  # one address's share (an Asterisk, or a hostile peer)
    agi_environment_deadline_s: float = Field(default=5.0, gt=0)  # the environment block within this
    workers: int = Field(default=1, ge=1, le=64)
    # The pages (sign-in, screens, board, work orders, delivery reports), the AMI bridge and the
    # background work in a process of their own, so nothing done for a page delays a call entry.
    separate_pages: bool = False
    # That process's nice level: on a busy box the call path gets the CPU first (a sign-in's
    # password hash is tens of milliseconds of CPU; a call entry waits on none of it).
    pages_nice: int = Field(default=10, ge=0, le=19)
    call_record_ttl_s: int = Field(default=86_400, ge=60)
    flows_dir: Path | None = None  # None: the flows shipped in the ivr_flows package
    ivr_flow: str = Field(default="hotline", pattern=r"^[a-z][a-z0-9_]*$")
    queues_conf: Path | None = None  # None: the shipped asterisk_conf/queues.conf
    # Where the prompts a flow names must exist (`flows validate` checks them); a language
    # prefix may precede a directory as PREFIX=DIR, e.g. custom/=/var/lib/asterisk/sounds/custom.
    sound_dirs: tuple[str, ...] = ()
    country_code: str = Field(default="86", pattern=r"^[1-9]\d{0,2}$")
    region: str = Field(default="CN", pattern=r"^[A-Z]{2}$")
    ami_host: str = "127.0.0.1"
    ami_port: int = Field(default=5038, ge=1, le=65535)
    ami_username: str = "hotline"
    ami_secret: str = ""  # empty: no AMI bridge (queue membership is then left to Asterisk's config)
    ami_keepalive_s: float = Field(default=5.0, gt=0)
    desk_reconcile_s: float = Field(default=10.0, gt=0)
    # A background component that fails unexpectedly is restarted after this, doubling while it
    # keeps failing, up to the ceiling (hotline_core.supervise).
    restart_backoff_s: float = Field(default=1.0, gt=0, le=60)
    restart_backoff_max_s: float = Field(default=60.0, gt=0, le=3600)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8088, ge=0, le=65535)
    # A connection must have sent a whole request head this soon after connecting (or after its
    # last answer): a client that drips header bytes cannot hold a connection for longer.
    http_idle_timeout_s: float = Field(default=10.0, gt=0, le=600)
    # Live pages (agent screens, boards) one signed-in person may hold open at once.
    streams_per_person: int = Field(default=8, ge=1, le=100_000)
    sms_gateway_url: str = ""  # Kannel's sendsms URL; empty: no SMS worker in this instance
    sms_username: str = ""
    sms_password: str = ""
    sms_sender: str = "10086"
    sms_report_token: str = ""  # delivery reports must carry it
    sms_retry_window_s: float = Field(default=6 * 3600, gt=0)  # a failing SMS is retried this long
    # An attempt whose outcome was lost (worker died mid-send, Redis failover) waits this long
    # for the gateway's delivery report before the SMS is sent again.
    sms_report_wait_s: float = Field(default=30.0, ge=0)
    sms_report_base: str = ""  # how the gateway reaches us, e.g. http://127.0.0.1:8088
    metrics_token: str = ""  # Prometheus scrapes /metrics with this bearer token; empty: /metrics off
    secure_cookie: bool = False  # sessions only over HTTPS (set behind a TLS terminator)
    # The records database (PostgreSQL, asyncpg DSN); empty: no durable records from this instance.
    database_url: str = ""
    # Its password, when the URL carries none: one secret kept in one file (HOTLINE_DATABASE_
    # PASSWORD_FILE, a container secret) instead of written into the URL as well.
    database_password: str = ""
    # Asterisk's queue_log file, read by this instance into the records database (on the box
    # where that Asterisk writes it); the source names that Asterisk in the records.
    queue_log_file: Path | None = None
    queue_log_source: str = Field(default="asterisk", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    records_retention_months: int = Field(default=13, ge=1, le=120)
    # Tests (and "what if" runs) pin the clock: call time for identities, seasons for the desks.
    frozen_time: datetime | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_sentinels(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        out = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"sentinel {item!r}: expected HOST:PORT (several separated by commas)")
            out.append((host, int(port)))
        return tuple(out)

    @model_validator(mode="after")
    def _password_into_url(self) -> Settings:
        if not self.database_password:
            return self
        if not self.database_url:
            raise ValueError("database_password is set but database_url is empty")
        parts = urlsplit(self.database_url)
        if parts.password is not None:
            raise ValueError("database_password is set and database_url carries a password too: keep one")
        user = parts.username or ""
        netloc = f"{user}:{quote(self.database_password, safe='')}@{parts.netloc.rpartition('@')[2]}"
        # Frozen model: the one place that writes a field after validation, before anyone reads it.
        object.__setattr__(self, "database_url", urlunsplit(parts._replace(netloc=netloc)))
        return self

    @field_validator("sound_dirs", mode="before")
    @classmethod
    def _split_path_list(cls, value: Any) -> Any:
        # From the environment it is one string, directories separated by ':' like PATH.
        return tuple(p for p in value.split(":") if p) if isinstance(value, str) else value


def _file_layers(config_file: Path) -> list[tuple[str, dict[str, Any]]]:
    files = [config_file]
    conf_d = config_file.parent / "conf.d"
    if conf_d.is_dir():
        files += sorted(conf_d.glob("*.yaml"))
    layers = []
    for path in files:
        loaded = load_yaml(path)
        if loaded.data is None:
            continue
        if not isinstance(loaded.data, dict):
            raise ConfigFileError([loaded.problem((), "a settings file must be a mapping of keys")])
        layers.append((str(path), dict(loaded.data)))
    return layers


FILE_SUFFIX = "_FILE"


def _read_secret(key: str, path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError([Problem("environment", key, f"cannot read {path}: {exc}")]) from None
    # The file's one line; the newline an editor or `echo` leaves is not part of the secret.
    return text.removesuffix("\n").removesuffix("\r")


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """HOTLINE_<NAME>, or HOTLINE_<NAME>_FILE naming a file that holds the value (the
    convention of container secrets: the secret is written once, in that file)."""
    fields = Settings.model_fields
    out: dict[str, Any] = {}
    from_files: dict[str, str] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in fields:
            out[name] = value
        elif key.endswith(FILE_SUFFIX) and (stem := name[: -len(FILE_SUFFIX)]) in fields \
                and fields[stem].annotation is str:
            from_files[stem] = key
    for name, key in from_files.items():
        if name in out:
            raise ConfigFileError([Problem("environment", key,
                                           f"{ENV_PREFIX}{name.upper()} is set as well: set one of the two")])
        out[name] = _read_secret(key, environ[key])
    return out


def load_settings(
    environ: Mapping[str, str],
    cli: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge every layer and validate once; errors name the layer and key that was wrong."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    path = config_file or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    layers: list[tuple[str, dict[str, Any]]] = _file_layers(path) if path else []
    layers.append(("environment", _env_layer(environ)))
    layers.append(("command line", {k: v for k, v in (cli or {}).items() if v is not None}))
    for source, values in layers:
        for key, value in values.items():
            merged[key] = value
            origin[key] = source
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            source = origin.get(key, "defaults")
            if source == "environment":
                key = ENV_PREFIX + key.upper()
            message = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(Problem(source, key, message))
        raise ConfigFileError(problems) from None


def redacted_url(url: str) -> str:
    """A URL fit for a log line or an error message: any password in it replaced."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
