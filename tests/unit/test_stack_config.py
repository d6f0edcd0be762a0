"""What the stack generates for its supervisor, Prometheus and Alertmanager, checked by the
tools themselves (promtool, amtool) where they are installed, and the cores file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest

from core.errors import ConfigError
from strategy_engine import monitoring
from strategy_engine.monitoring import AlertTiming
from strategy_engine.services import Layout, StackConfig
from strategy_engine.stack_cores import DEFAULT_FEED, CoreSpec, default_cores, load_cores
from strategy_engine.supervision import Program, Supervisor

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
NO_PROMTOOL = "promtool not installed (Debian package prometheus)"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# --- the shipped alert rules -------------------------------------------------------------------


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_the_shipped_rules_are_valid_and_pass_their_unit_tests():
    assert PROMTOOL is not None
    checked = _run([PROMTOOL, "check", "rules", str(monitoring.RULES_FILE)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 15 rules found" in checked.stdout
    tested = _run([PROMTOOL, "test", "rules", str(monitoring.RULES_TEST_FILE)])
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_the_issue_names_has_a_rule_and_a_unit_test():
    rules = monitoring.RULES_FILE.read_text()
    tests = monitoring.RULES_TEST_FILE.read_text()
    for alert in (
        "CoreHeartbeatStale", "CoreDown", "TickToSignalP99AboveBudget", "FastCycleOverruns",
        "DeadLetterRate", "KillSwitchTripped", "DrawdownPastThreshold", "RedisReconnecting",
        "OutputsBuffered", "DataGateFailed", "RetrainFailed", "ChampionChanged",
        "CoreRestarted", "CoreCrashLooping", "ActiveSetRefused",
    ):  # fmt: skip
        assert f"alert: {alert}\n" in rules, alert
        assert f"alertname: {alert}\n" in tests, alert


# --- generated configurations ------------------------------------------------------------------


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_the_generated_prometheus_config_is_one_promtool_accepts(tmp_path: Path):
    assert PROMTOOL is not None
    token = tmp_path / "reader.token"
    token.write_text("a-reader-token\n")
    token.chmod(0o600)
    config = monitoring.prometheus_config(
        core_targets={"core-1": 9108, "core-2": 9109},
        dashboard_port=8060,
        alertmanager_port=9093,
        timing=AlertTiming(scrape_interval_s=1.5, evaluation_interval_s=15),
        dashboard_token_file=token,
    )
    path = monitoring.write_config(tmp_path / "prometheus.yml", config)
    assert path.stat().st_mode & 0o077 == 0
    checked = _run([PROMTOOL, "check", "config", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert config["global"]["scrape_interval"] == "1500ms"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = jobs["core"]["static_configs"]
    assert [(t["targets"], t["labels"]["core"]) for t in targets] == [
        (["127.0.0.1:9108"], "core-1"),
        (["127.0.0.1:9109"], "core-2"),
    ]
    # The dashboard job scrapes the API's /metrics with a reader token from a file.
    assert jobs["dashboard"]["static_configs"] == [{"targets": ["127.0.0.1:8060"]}]
    assert jobs["dashboard"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": str(token),
    }
    assert "metrics_path" not in jobs["dashboard"]  # /metrics, as before


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (prometheus-alertmanager)")
def test_the_generated_alertmanager_config_is_one_amtool_accepts(tmp_path: Path):
    assert AMTOOL is not None
    token = tmp_path / "receiver.token"
    token.write_text("secret")
    config = monitoring.alertmanager_config(
        receiver_url="http://127.0.0.1:9095", token_file=token, timing=AlertTiming()
    )
    path = monitoring.write_config(tmp_path / "alertmanager.yml", config)
    checked = _run([AMTOOL, "check-config", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    hook = config["receivers"][0]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:9095/alertmanager"
    assert hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["credentials_file"] == str(token)


def test_alertmanager_and_prometheus_listen_on_the_address_given_and_nowhere_else(tmp_path: Path):
    manager = monitoring.alertmanager_argv("am", tmp_path / "c", tmp_path / "d", "127.0.0.1", 9)
    assert "--web.listen-address=127.0.0.1:9" in manager
    assert "--cluster.listen-address=" in manager  # no gossip port on every address
    scraper = monitoring.prometheus_argv("p", tmp_path / "c", tmp_path / "d", "127.0.0.1", 7)
    assert "--web.listen-address=127.0.0.1:7" in scraper


# --- the stack's settings ----------------------------------------------------------------------


def test_the_stack_config_with_its_layout_cores_and_timing_survives_json(tmp_path: Path):
    config = StackConfig(
        redis_port=7001,
        layout=Layout(tmp_path / "var"),
        cores=(CoreSpec(name="east", args=("--feed", "x")),),
        alert_timing=AlertTiming(group_wait_s=2.0),
    )
    data = msgspec.json.decode(msgspec.json.encode(config.to_dict()))
    assert data["layout"] == {"var_dir": str(tmp_path / "var")}
    assert StackConfig.from_dict(data) == config
    moved = config.replace(layout=Layout(tmp_path / "other"))
    assert moved.layout.state_file == tmp_path / "other" / "run" / "services.json"
    assert moved.cores == config.cores and moved.redis_port == 7001
    schema = StackConfig.json_schema()
    assert set(schema["properties"]) == set(data)
    assert {"Layout", "CoreSpec", "AlertTiming"} <= set(schema["$defs"])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"redis_port": 0}, "redis_port must be an integer in 1..65535, was 0"),
        ({"api_port": 70000}, "api_port must be an integer in 1..65535"),
        ({"redis_bind": "127.0.0.1 ::1"}, "redis_bind must be one address"),
        ({"redis_appendfsync": "no"}, "appendfsync must be one of"),
    ],
)
def test_bad_stack_settings_are_config_errors_built_directly_or_from_data(fields, message):
    with pytest.raises(ConfigError, match=message):
        StackConfig(**fields)
    with pytest.raises(ConfigError, match=message):
        StackConfig.from_dict(fields)


def test_a_port_built_in_code_must_be_an_int_and_unknown_fields_are_refused():
    with pytest.raises(ConfigError, match=r"redis_port must be an integer in 1\.\.65535, was True"):
        StackConfig(redis_port=True)
    with pytest.raises(ConfigError, match="was '6379'"):
        StackConfig(redis_port="6379")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"unknown field `var` - at `\$.layout`"):
        StackConfig.from_dict({"layout": {"var": "elsewhere"}})


# --- the cores file ----------------------------------------------------------------------------


def test_without_a_file_one_core_runs_on_the_equities_feed():
    assert default_cores() == (CoreSpec(name="core-1", args=("--feed", DEFAULT_FEED)),)


def test_a_cores_file_lists_cores_with_their_options(tmp_path: Path):
    path = tmp_path / "cores.toml"
    path.write_text(
        '[[core]]\nname = "east"\nargs = ["--feed", "x", "--shard", "0/2"]\n'
        '[[core]]\nname = "west"\nargs = ["--feed", "x", "--shard", "1/2", "--live"]\n'
    )
    assert load_cores(path) == (
        CoreSpec(name="east", args=("--feed", "x", "--shard", "0/2")),
        CoreSpec(name="west", args=("--feed", "x", "--shard", "1/2", "--live")),
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no [[core]] table"),
        ("[[core", "is not TOML"),
        ('[[core]]\nname = "a"\n[[core]]\nname = "a"\n', "a name of its own"),
        ('[[core]]\nname = "a b"\n', "letters, digits"),
        ('[[core]]\nname = "a"\nargs = "--feed x"\n', "list of strings"),
        ('[[core]]\nname = "a"\ncolour = 1\n', "unknown key"),
        ('[[core]]\nargs = ["--replay", "x"]\n', "runs until stopped"),
        ('[[core]]\nargs = ["--until-end"]\n', "runs until stopped"),
        ('[[core]]\nargs = ["--metrics-port=1"]\n', "set by the stack"),
        ('[[core]]\nargs = ["--no-such-option"]\n', "unrecognized arguments"),
    ],
)
def test_a_bad_cores_file_is_one_clear_error(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "cores.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[")):
        load_cores(path)


def test_a_cores_file_that_is_too_large_or_missing_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="cores file"):
        load_cores(tmp_path / "none.toml")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * 70_000)
    with pytest.raises(ConfigError, match="larger than"):
        load_cores(big)


# --- the supervisor's configuration ------------------------------------------------------------


def test_program_files_escape_percent_signs_and_refuse_what_supervisord_cannot_carry(
    tmp_path: Path,
):
    supervisor = Supervisor(tmp_path / "var", tmp_path)
    text = supervisor._program_conf(
        Program(name="p", argv=["/bin/echo", "50%"], env={"URL": "redis://u:a%b@h:1/0"})
    )
    assert "command=/bin/echo 50%%" in text
    assert 'URL="redis://u:a%%b@h:1/0"' in text
    assert "autorestart=true" in text and "stopasgroup=true" in text
    with pytest.raises(ConfigError, match="cannot be passed"):
        supervisor._program_conf(Program(name="p", argv=["/bin/true"], env={"X": 'a"b'}))
    with pytest.raises(ConfigError, match="program name"):
        Program(name="a b", argv=["/bin/true"])
    with pytest.raises(ConfigError, match="absolute path"):
        Program(name="p", argv=["true"])
    program = Program.from_dict({"name": "p", "argv": ["/bin/true"], "env": {"A": "1"}})
    assert program == Program(name="p", argv=["/bin/true"], env={"A": "1"})
    with pytest.raises(ConfigError, match="absolute path"):
        program.replace(argv=["true"])
