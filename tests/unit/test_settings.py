from pathlib import Path

import pytest

from hotline_core.settings import load_settings
from hotline_core.yamlpos import ConfigFileError


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.agi_host == "127.0.0.1"
    assert settings.agi_port == 4573
    assert settings.lookup_budget_ms == 200


def test_layers_file_then_conf_d_then_environment_then_command_line(tmp_path: Path) -> None:
    config = tmp_path / "hotline.yaml"
    config.write_text("redis_url: redis://127.0.0.1:1/0\nagi_port: 5000\nlookup_budget_ms: 50\nlog_level: debug\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-port.yaml").write_text("agi_port: 5001\n")
    env = {"HOTLINE_CONFIG": str(config), "HOTLINE_LOOKUP_BUDGET_MS": "75", "HOTLINE_AGI_PORT": "5002"}
    settings = load_settings(env, {"agi_port": 5003, "redis_url": None})
    assert settings.redis_url == "redis://127.0.0.1:1/0"  # file (the CLI gave no value)
    assert settings.log_level == "debug"  # file
    assert settings.lookup_budget_ms == 75  # environment over file
    assert settings.agi_port == 5003  # command line over everything


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigFileError) as info:
        load_settings({"HOTLINE_AGI_PORT": "many"})
    assert "environment: HOTLINE_AGI_PORT:" in str(info.value)


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "hotline.yaml"
    config.write_text("redis_uri: redis://x\n")
    with pytest.raises(ConfigFileError) as info:
        load_settings({}, config_file=config)
    assert f"{config}: redis_uri: unknown setting" in str(info.value)


def test_a_url_shown_to_anyone_carries_no_password() -> None:
    from hotline_core.settings import redacted_url

    assert redacted_url("redis://:s3cret@127.0.0.1:6379/0") == "redis://***@127.0.0.1:6379/0"
    assert redacted_url("postgresql://hotline:pw@127.0.0.1:5440/hotline") == "postgresql://***@127.0.0.1:5440/hotline"
    assert redacted_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_secret_is_read_from_the_file_its_variable_names(tmp_path: Path) -> None:
    (tmp_path / "ami").write_text("from-a-file\n")  # the newline `echo` leaves is not the secret's
    (tmp_path / "db").write_text("p@ss:w/rd")
    settings = load_settings({"HOTLINE_AMI_SECRET_FILE": str(tmp_path / "ami"),
                              "HOTLINE_DATABASE_URL": "postgresql://hotline@db.internal:5432/hotline",
                              "HOTLINE_DATABASE_PASSWORD_FILE": str(tmp_path / "db"),
                              "HOTLINE_QUEUE_LOG_FILE": "/var/log/asterisk/queue_log"})
    assert settings.ami_secret == "from-a-file"
    # The password goes into the URL quoted, so a ':' or '/' in it cannot change the address.
    assert settings.database_url == "postgresql://hotline:p%40ss%3Aw%2Frd@db.internal:5432/hotline"
    assert str(settings.queue_log_file) == "/var/log/asterisk/queue_log"  # a setting that ends in _FILE


@pytest.mark.parametrize(("env", "why"), [
    ({"HOTLINE_AMI_SECRET_FILE": "/nonexistent/ami"}, "HOTLINE_AMI_SECRET_FILE: cannot read /nonexistent/ami"),
    ({"HOTLINE_AMI_SECRET": "a", "HOTLINE_AMI_SECRET_FILE": "/dev/null"}, "HOTLINE_AMI_SECRET is set as well"),
    ({"HOTLINE_DATABASE_PASSWORD": "x"}, "database_url is empty"),
    ({"HOTLINE_DATABASE_PASSWORD": "x", "HOTLINE_DATABASE_URL": "postgresql://a:b@h/d"}, "keep one"),
])
def test_a_secret_given_wrongly_is_named(env: dict[str, str], why: str) -> None:
    with pytest.raises(ConfigFileError, match=why):
        load_settings(env)
