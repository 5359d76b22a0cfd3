"""integd.config: defaults, the example file, every kind of bad input, env overrides, paths, reload rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from integd.config import (
    Config,
    ConfigError,
    HealthConfig,
    RateLimitConfig,
    ServiceConfig,
    SinkConfig,
    UsageConfig,
    check_config_file,
    diff_reloadable,
    load_config,
    redacted,
    resolve_paths,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "systemd" / "config.example.toml"
NO_FILES = {"HOME": "/nonexistent-home"}


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value.problems


# ------------------------------------------------------------------------------------------- defaults

def test_defaults_when_no_file_exists() -> None:
    config = load_config(env=NO_FILES, uid=1000)
    assert config.source is None
    assert config.daemon.socket_mode == 0o660
    assert config.daemon.log_level == "info" and config.daemon.log_format == "auto"
    assert config.daemon.shutdown_timeout == 10.0 and config.daemon.watchdog is True
    assert config.health == HealthConfig(interval=300, jitter=0.1, concurrency=16, timeout=10)
    assert config.usage.default_plan == "standard"
    assert config.usage.plans["standard"].daily_limit == 50_000
    assert config.services == {} and config.sinks == {}


def test_example_file_parses_commented_and_uncommented(tmp_path: Path) -> None:
    assert load_config(EXAMPLE, env={}) == Config()
    # Every "# key = value" and "# [table]" line uncommented must be a valid, complete configuration too.
    lines = [line[2:] if re.match(r"^# (\[|[a-z_]+ = )", line) else line
             for line in EXAMPLE.read_text().splitlines()]
    config = load_config(write(tmp_path, "\n".join(lines)), env={})
    assert config.services["github"].rate_limit == RateLimitConfig(per_minute=60, per_hour=4000,
                                                                   per_day=50000, burst=10)
    assert config.sinks["analytics"].secret_file == Path("/etc/integd/analytics.secret")
    assert config.usage.users == {"alice": "standard"}
    assert config.daemon.socket_mode == 0o660


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    for section, model in [("daemon", Config().daemon), ("health", Config().health), ("usage", Config().usage),
                           ("identity", Config().identity), ("vault", Config().vault)]:
        for key in set(type(model).model_fields) - {"plans", "users"}:
            assert re.search(rf"^# {key} = ", text, re.M), f"{section}.{key} missing from the example"
    for key in [*ServiceConfig.model_fields, *RateLimitConfig.model_fields, *SinkConfig.model_fields]:
        if key != "rate_limit":
            assert re.search(rf"^# {key} = ", text, re.M), f"{key} missing from the example"
    assert "# [usage.plans.standard]" in text and "# [usage.users]" in text


@pytest.mark.parametrize("given", ["0640", "0o640", 0o640, "640"])
def test_socket_mode_forms(tmp_path: Path, given: object) -> None:
    value = f'"{given}"' if isinstance(given, str) else "0o640"
    config = load_config(write(tmp_path, f"[daemon]\nsocket_mode = {value}\n"), env={})
    assert config.daemon.socket_mode == 0o640
    assert redacted(config)["daemon"]["socket_mode"] == "0640"


def test_log_level_is_case_insensitive(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, '[daemon]\nlog_level = "DEBUG"\n'), env={}).daemon.log_level == "debug"


# ------------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize(("text", "key", "words"), [
    ('[health]\ninterval = "often"\n', "health.interval", "valid number"),
    ("[health]\ninterval = 5\n", "health.interval", "greater than or equal to 10"),
    ("[health]\njitter = 0.9\n", "health.jitter", "less than or equal to 0.5"),
    ("[health]\nintervall = 60\n", "health.intervall", "expected one of: concurrency, interval, jitter, timeout"),
    ("[deamon]\nwatchdog = false\n", "deamon", "unknown key"),
    ('[daemon]\nsocket_mode = "0999"\n', "daemon.socket_mode", "octal file mode"),
    ("[daemon]\nsocket_mode = 0o1777\n", "daemon.socket_mode", "between 0000 and 0777"),
    ('[daemon]\nstate_dir = "relative/dir"\n', "daemon.state_dir", "absolute path"),
    ('[daemon]\nlog_level = "loud"\n', "daemon.log_level", "'debug', 'info', 'warning' or 'error'"),
    ("[daemon]\nshutdown_timeout = 0\n", "daemon.shutdown_timeout", "greater than 0"),
    ('[services.github]\nbase_url = "ftp://example.com"\n', "services.github.base_url", "http"),
    ("[services.github.rate_limit]\nper_minute = -1\n", "services.github.rate_limit.per_minute", "greater than 0"),
    ('[sinks.a]\nevents = ["*"]\n', "sinks.a.url", "required"),
    ('[usage.plans.pro]\ndaily_limit = 0\n', "usage.plans.pro.daily_limit", "greater than 0"),
    ('[webhooks]\npublic_url = "example.org"\n', "webhooks.public_url", "URL"),
    ("[webhooks]\ngoogle_channel_hours = 200\n", "webhooks.google_channel_hours", "less than or equal to 168"),
])
def test_bad_values_name_file_and_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {key}: ")
    assert words in problems[0]


def test_unknown_plan_reference_names_user_and_plan(tmp_path: Path) -> None:
    path = write(tmp_path, '[usage]\ndefault_plan = "gold"\n[usage.users]\nbob = "platinum"\n')
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: usage: ")
    assert "default_plan 'gold'" in problem and "users.bob = 'platinum'" in problem
    assert "defined plans: standard" in problem


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, "[health]\ninterval = 1\nconcurrency = 0\n"))
    assert [p.split(": ")[1] for p in problems] == ["health.interval", "health.concurrency"]


def test_values_are_never_echoed(tmp_path: Path) -> None:
    secret = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
    path = write(tmp_path, f'[services.github]\ntoken = "{secret}"\nbase_url = "{secret}"\n')
    problems = problems_of(path)
    assert len(problems) == 2
    assert all(secret not in line for line in problems)
    assert any("services.github.token" in line and "unknown key" in line for line in problems)


def test_bad_toml_syntax_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[daemon]\nlog_level = \n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: invalid TOML: ") and "line 2" in problem


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[daemon]\nsocket_group = "\xff"\n')
    (problem,) = problems_of(path)
    assert "not UTF-8" in problem


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: configuration file not found")):
        load_config(missing, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(env={"INTEGD_CONFIG": str(missing)})


def test_unreadable_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(tmp_path, env={})


def test_check_config_file(tmp_path: Path) -> None:
    assert check_config_file(EXAMPLE) == []
    path = write(tmp_path, "[health]\ninterval = 1\n")
    assert check_config_file(path) == [
        f"{path}: health.interval: Input should be greater than or equal to 10 (got a value below the minimum)"]


# ---------------------------------------------------------------------------------- which file is read

def test_default_file_for_a_user_is_xdg(tmp_path: Path) -> None:
    (tmp_path / "integd").mkdir()
    write(tmp_path / "integd", "[health]\ninterval = 60\n")
    config = load_config(env={"XDG_CONFIG_HOME": str(tmp_path)}, uid=1000)
    assert config.health.interval == 60 and config.source == tmp_path / "integd" / "config.toml"
    home = tmp_path / "home"
    (home / ".config" / "integd").mkdir(parents=True)
    write(home / ".config" / "integd", "[health]\ninterval = 70\n")
    assert load_config(env={"HOME": str(home)}, uid=1000).health.interval == 70


def test_configuration_directory_from_systemd(tmp_path: Path) -> None:
    write(tmp_path, "[health]\ninterval = 90\n")
    config = load_config(env={"CONFIGURATION_DIRECTORY": f"{tmp_path}:/etc/other"}, uid=0)
    assert config.health.interval == 90
    # Present but without a file: defaults, not an error.
    assert load_config(env={"CONFIGURATION_DIRECTORY": str(tmp_path / "empty")}, uid=0) == Config()


def test_integd_config_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[health]\ninterval = 20\n", name="elsewhere.toml")
    assert load_config(env={"INTEGD_CONFIG": str(path)}).health.interval == 20


# --------------------------------------------------------------------------------------- env overrides

def test_env_overrides_apply_after_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[daemon]\nlog_level = "warning"\nstate_dir = "/srv/a"\n')
    env = {"INTEGD_LOG_LEVEL": "DEBUG", "INTEGD_LOG_FORMAT": "json", "INTEGD_STATE_DIR": "/srv/b",
           "INTEGD_SOCKET": "/srv/b/api.sock", "INTEGD_KEY_FILE": "/srv/key"}
    config = load_config(path, env=env)
    assert config.daemon.log_level == "debug" and config.daemon.log_format == "json"
    assert config.daemon.state_dir == Path("/srv/b") and config.daemon.socket == Path("/srv/b/api.sock")
    assert config.vault.key_file == Path("/srv/key")


def test_env_override_errors_name_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[health]\ninterval = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"INTEGD_LOG_FORMAT": "xml"})
    first, second = info.value.problems
    assert first.startswith("$INTEGD_LOG_FORMAT: daemon.log_format: ")
    assert second.startswith(f"{path}: health.interval")


def test_relative_env_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={**NO_FILES, "INTEGD_STATE_DIR": "state"}, uid=1000)
    assert config.daemon.state_dir == tmp_path / "state"


# ----------------------------------------------------------------------------------------------- paths

def test_paths_under_systemd() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/integd:/var/lib/other", "RUNTIME_DIRECTORY": "/run/integd"}
    paths = resolve_paths(Config(), env=env, uid=998)
    assert paths.state_dir == Path("/var/lib/integd")
    assert paths.socket == Path("/run/integd/integd.sock")
    assert paths.config_file is None


def test_paths_for_root_without_systemd() -> None:
    paths = resolve_paths(Config(), env={}, uid=0)
    assert paths.state_dir == Path("/var/lib/integd") and paths.socket == Path("/run/integd/integd.sock")


def test_paths_for_a_user_with_xdg() -> None:
    env = {"XDG_STATE_HOME": "/home/u/.st", "XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/u"}
    paths = resolve_paths(Config(), env=env, uid=1000)
    assert paths.state_dir == Path("/home/u/.st/integd")
    assert paths.socket == Path("/run/user/1000/integd/integd.sock")


def test_paths_for_a_user_without_xdg() -> None:
    paths = resolve_paths(Config(), env={"HOME": "/home/u", "XDG_STATE_HOME": "relative/ignored"}, uid=1000)
    assert paths.state_dir == Path("/home/u/.local/state/integd")
    assert paths.socket == Path("/home/u/.local/state/integd/integd.sock")


def test_configured_paths_win(tmp_path: Path) -> None:
    path = write(tmp_path, f'[daemon]\nstate_dir = "{tmp_path}/s"\nsocket = "{tmp_path}/x.sock"\n')
    paths = resolve_paths(load_config(path, env={}), env={"STATE_DIRECTORY": "/var/lib/integd"}, uid=0)
    assert paths == type(paths)(state_dir=tmp_path / "s", socket=tmp_path / "x.sock", config_file=path)


def test_too_long_socket_path_is_refused() -> None:
    config = Config(daemon={"state_dir": "/" + "d" * 120})
    with pytest.raises(ConfigError, match="at most 107 bytes"):
        resolve_paths(config, env={}, uid=1000)


# ---------------------------------------------------------------------------------------------- reload

def test_redacted_is_json_ready() -> None:
    import json
    config = Config(daemon={"state_dir": "/var/lib/x"}, vault={"key_file": "/etc/k"})
    data = redacted(config)
    assert json.loads(json.dumps(data)) == data
    assert data["daemon"]["state_dir"] == "/var/lib/x" and data["vault"]["key_file"] == "/etc/k"
    assert Config.model_validate(data) == config   # show output is itself a valid configuration


def test_diff_reloadable_lists_live_keys() -> None:
    old = Config(services={"github": ServiceConfig(base_url="https://ghe.example.com/api/v3")})
    new = Config(
        daemon={"log_level": "debug"},
        health=HealthConfig(interval=60),
        usage=UsageConfig(plans={"standard": {"daily_limit": 5}, "pro": {"daily_limit": 9}}, users={"al": "pro"}),
        services={"github": ServiceConfig(base_url="https://ghe.example.com/api/v3", timeout=5,
                                          rate_limit=RateLimitConfig(per_minute=30)),
                  "slack": ServiceConfig(timeout=3)},
    )
    assert diff_reloadable(old, new) == [
        "daemon.log_level", "health.interval", "services.github.rate_limit.per_minute",
        "services.github.timeout", "services.slack.timeout", "usage.plans.pro.daily_limit",
        "usage.plans.standard.daily_limit", "usage.users.al",
    ]
    assert diff_reloadable(new, new) == []


@pytest.mark.parametrize(("change", "key"), [
    ({"daemon": {"socket": "/run/x.sock"}}, "daemon.socket"),
    ({"daemon": {"state_dir": "/srv"}}, "daemon.state_dir"),
    ({"vault": {"key_file": "/k"}}, "vault.key_file"),
    ({"services": {"github": {"base_url": "https://example.com"}}}, "services.github.base_url"),
    ({"sinks": {"a": {"url": "https://example.com"}}}, "sinks.a.url"),
])
def test_diff_reloadable_refuses_fixed_keys(change: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key) + ": changed, but it cannot be reloaded"):
        diff_reloadable(Config(), Config.model_validate({**change, "health": {"interval": 60}}))
