import pytest

from asterisk_conf.render import (
    AgentEndpoint,
    Deployment,
    RenderError,
    deployment_from,
    load_templates,
    parse_agent_file,
    parse_endpoint,
    render,
)


def rendered(**kw: object) -> dict[str, str]:
    base: dict[str, object] = {"ami_secret": "s3cret", "agents": (AgentEndpoint("agent1", "pw1", "sip:agent1@127.0.0.1:5071"),)}
    base.update(kw)
    return render(load_templates(), Deployment(**base))  # type: ignore[arg-type]


def test_every_template_renders_without_leftover_placeholders() -> None:
    files = rendered(sip_port=5080, agi_port=4600)
    assert "bind = 127.0.0.1:5080" in files["pjsip.conf"]
    assert "AGI(agi://127.0.0.1:4600/ivr," in files["extensions.conf"]
    assert "member => PJSIP/agent1,0,agent1" in files["queues.conf"]
    assert "password = pw1" in files["pjsip.conf"]
    assert all("@@" not in text for text in files.values())


def test_only_loopback_and_the_hotline_for_callers() -> None:
    files = rendered()
    assert "bindaddr = 127.0.0.1" in files["manager.conf"]
    assert "deny = 0.0.0.0/0.0.0.0" in files["manager.conf"]
    dialplan = files["extensions.conf"]
    caller_context = dialplan.split("[from-caller]")[1].split("\n[")[0]
    assert "include" not in caller_context
    assert "Dial(" not in caller_context  # callers reach agents only through the queue
    assert "exten => 10086,1" in caller_context


def test_asterisk_variables_are_left_alone() -> None:
    assert "${CHANNEL(linkedid)}" in rendered()["extensions.conf"]


def test_missing_secret_and_bad_values_are_refused() -> None:
    with pytest.raises(RenderError, match="AMI secret is empty"):
        render(load_templates(), Deployment())
    with pytest.raises(RenderError, match="single line"):
        rendered(agi_host="127.0.0.1\n[evil]")
    with pytest.raises(RenderError, match="agent name"):
        rendered(agents=(AgentEndpoint("Agent 1", "pw", "sip:x@127.0.0.1"),))
    with pytest.raises(RenderError, match="unknown placeholder"):
        render({"x.conf": "port = @@NOPE@@"}, Deployment(ami_secret="s"))


def test_overrides_and_agent_specs() -> None:
    deployment = deployment_from({"SIP_PORT": "5090", "ami_secret": "x"}, (parse_endpoint("a1:pw:sip:a1@127.0.0.1:5071"),))
    assert (deployment.sip_port, deployment.ami_secret, deployment.agents[0].contact) == (5090, "x", "sip:a1@127.0.0.1:5071")
    with pytest.raises(RenderError, match="unknown setting"):
        deployment_from({"SIP_PROT": "1"}, ())
    with pytest.raises(RenderError, match="not a number"):
        deployment_from({"SIP_PORT": "five"}, ())
    with pytest.raises(RenderError, match="NAME:SECRET or NAME:SECRET:CONTACT"):
        parse_endpoint("agent1")
    assert parse_endpoint("a2:pw") == AgentEndpoint("a2", "pw", "")


def test_a_phone_that_registers_has_no_fixed_contact() -> None:
    pjsip = rendered(agents=(AgentEndpoint("agent7", "pw7"),))["pjsip.conf"]
    aor = pjsip.split("[agent7]\ntype = aor\n")[1].split("\n\n")[0]
    assert "contact =" not in aor
    assert "max_contacts = 1" in aor
    assert "remove_existing = yes" in aor
    assert "username = agent7\npassword = pw7" in pjsip  # it registers with its name and secret


def test_the_agent_file_names_the_line_that_is_wrong() -> None:
    text = "# phones\n\nagent1,pw1\nagent2, pw2 ,sip:agent2@10.0.0.9:5060\n"
    assert parse_agent_file(text, "phones.csv") == (AgentEndpoint("agent1", "pw1"),
                                                     AgentEndpoint("agent2", "pw2", "sip:agent2@10.0.0.9:5060"))
    for bad, why in [("agent1\n", "phones.csv:1: expected name,secret"),
                     ("agent1,pw\nAgent 2,pw\n", "phones.csv:2: agent name 'Agent 2'"),
                     ("agent1,pw\n# x\nagent1,pw2\n", "phones.csv:3: agent agent1 is listed twice"),
                     ("agent1,,sip:x@h\n", "phones.csv:1: expected")]:
        with pytest.raises(RenderError, match=why):
            parse_agent_file(bad, "phones.csv")


def test_what_waiting_callers_hear_follows_the_policy() -> None:
    from asterisk_conf.render import level_queues
    from hotline_core.policy import load_policy

    queues = rendered(level_queues=level_queues(load_policy()))["queues.conf"]
    vip = queues.split("[hotline-gotone_vip]")[1].split("\n[")[0]
    ordinary = queues.split("[hotline-ordinary_easyown]")[1].split("\n[")[0]
    assert "announce-position = no" in vip  # VIP callers hear music only
    assert "announce-holdtime = no" in vip
    assert "periodic-announce-frequency = 0" in vip
    assert "announce-position = yes" in ordinary
    assert "announce-holdtime = yes" in ordinary
    assert "announce-frequency = 90" in ordinary
    assert "periodic-announce = queue-periodic-announce" in ordinary


def test_a_refused_caller_is_written_into_queue_log_and_queue_log_is_on() -> None:
    files = rendered()
    assert "HOTLINE_REFUSED" in files["extensions.conf"]
    assert "queue_log = yes" in files["logger.conf"]


def test_no_global_decides_where_calls_go_and_the_ami_user_cannot_take_over_calls() -> None:
    files = rendered()
    assert "[globals]" not in files["extensions.conf"]  # a Setvar on a global cannot redirect the AGI
    manager = files["manager.conf"]
    assert "write = agent" in manager
    assert "call" not in manager.split("write =")[1].splitlines()[0]


def test_files_with_secrets_are_written_for_their_owner_only(tmp_path: object) -> None:
    from pathlib import Path

    from asterisk_conf.render import write

    target = Path(str(tmp_path)) / "etc"
    target.mkdir()
    (target / "manager.conf").write_text("old")
    (target / "manager.conf").chmod(0o644)
    write(rendered(), target)
    assert (target / "manager.conf").stat().st_mode & 0o777 == 0o600
    assert (target / "pjsip.conf").stat().st_mode & 0o777 == 0o600
    assert (target / "extensions.conf").stat().st_mode & 0o777 == 0o644


def test_several_instances_by_srv_records() -> None:
    """AGI_SRV: Asterisk reaches the instances listed under _agi._tcp.NAME (hagi://)."""
    dialplan = rendered(agi_srv="agi.hotline.test")["extensions.conf"]
    assert "AGI(hagi://agi.hotline.test/ivr,${CHANNEL(linkedid)})" in dialplan
    assert "agi://127.0.0.1" not in dialplan
    assert deployment_from({"AGI_SRV": "agi.hotline.test", "AMI_SECRET": "x"}, ()).agi_srv == "agi.hotline.test"
    for bad in ("agi hotline", "a/b", "x" * 300, "-lead.example"):
        with pytest.raises(RenderError, match="not a DNS name"):
            rendered(agi_srv=bad)


def test_a_system_name_for_several_asterisk_servers() -> None:
    assert "systemname = ast-a" in rendered(system_name="ast-a")["asterisk.conf"]
    assert "systemname =" not in rendered()["asterisk.conf"]
    with pytest.raises(RenderError, match="SYSTEM_NAME"):
        rendered(system_name="A B")
