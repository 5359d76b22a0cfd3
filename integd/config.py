"""integd configuration: TOML file, environment overrides, resolved paths, reload rules.

Where the configuration comes from (the first file found wins)::

    load_config(path)              ─┐ named explicitly: must exist
    $INTEGD_CONFIG                 ─┘
    $CONFIGURATION_DIRECTORY/config.toml                   (systemd ConfigurationDirectory=) ─┐ implicit:
    /etc/integd/config.toml (uid 0), else                                                     │ absent means
    $XDG_CONFIG_HOME/integd/config.toml (~/.config/integd/config.toml)                       ─┘ all defaults

then INTEGD_SOCKET, INTEGD_STATE_DIR, INTEGD_LOG_LEVEL, INTEGD_LOG_FORMAT and INTEGD_KEY_FILE override the
file, and the merged result is validated by the models below (``extra="forbid"`` everywhere: a typo is an
error, not a silently ignored key).

Exceptions::

    Exception
     └── ConfigError     anything wrong with the file, the environment, the paths or a reload; ``problems``
                         holds one line per problem: "<source>: <dotted.key>: <what is wrong> (<what was given>)"

Trust model: the configuration holds no secrets, only paths to files that hold them (``vault.key_file``,
``sinks.*.secret_file``). Even so an error never echoes a configured value, only its type or its relation to
the allowed range, so a secret pasted under the wrong key does not reach a terminal or a log.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    PlainSerializer,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

ENV_OVERRIDES: dict[str, tuple[str, str]] = {   # variable -> (section, key)
    "INTEGD_SOCKET": ("daemon", "socket"),
    "INTEGD_STATE_DIR": ("daemon", "state_dir"),
    "INTEGD_LOG_LEVEL": ("daemon", "log_level"),
    "INTEGD_LOG_FORMAT": ("daemon", "log_format"),
    "INTEGD_KEY_FILE": ("vault", "key_file"),
}
# AF_UNIX sun_path is 108 bytes including the terminating NUL (unix(7)).
_SUN_PATH_MAX = 107


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason, one human line each.

    Example:
        >>> ConfigError(["config.toml: health.interval: Input should be greater than or equal to 10"]).problems[0]
        'config.toml: health.interval: Input should be greater than or equal to 10'
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------------------------------------- field types

def _parse_mode(value: Any) -> int:
    """Accept 0o660 (an int, as TOML's octal literal gives), "0660" or "0o660"; always octal when a string."""
    if isinstance(value, bool):
        raise ValueError("expected an octal file mode such as \"0660\"")
    if isinstance(value, str):
        try:
            value = int(value.strip(), 8)
        except ValueError:
            raise ValueError("expected an octal file mode such as \"0660\"") from None
    if not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError("expected a file mode between 0000 and 0777")
    return value


def _absolute_path(value: Path) -> Path:
    value = value.expanduser()
    if not value.is_absolute():
        raise ValueError("expected an absolute path (or one starting with ~)")
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _http_url(value: str) -> str:
    """Validate as an http(s) URL but keep the text as written (HttpUrl would append a slash)."""
    TypeAdapter(HttpUrl).validate_python(value)
    return value


FileMode = Annotated[int, BeforeValidator(_parse_mode), PlainSerializer(lambda m: f"{m:04o}", return_type=str, when_used="json")]
AbsPath = Annotated[Path, AfterValidator(_absolute_path)]
HttpUrlStr = Annotated[str, AfterValidator(_http_url)]
PositiveInt = Annotated[int, Field(gt=0)]
LogLevel = Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)]
LogFormat = Annotated[Literal["auto", "json", "console"], BeforeValidator(_lower)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# -------------------------------------------------------------------------------------------------- models

class RateLimitConfig(_Strict):
    """A user's own limits for one service; they may lower the provider's published limits, never raise them."""
    per_minute: PositiveInt | None = None
    per_hour: PositiveInt | None = None
    per_day: PositiveInt | None = None
    burst: PositiveInt | None = None


class ServiceConfig(_Strict):
    """``[services.<name>]``: where a provider lives (GitHub Enterprise, an emulator) and how to pace it."""
    base_url: HttpUrlStr | None = None
    rate_limit: RateLimitConfig = RateLimitConfig()
    timeout: Annotated[float, Field(gt=0, le=300)] | None = None


class PlanConfig(_Strict):
    """A usage plan: the daily fair-use budget of calls across all of a user's apps."""
    daily_limit: PositiveInt


class DaemonConfig(_Strict):
    """``[daemon]``: the process itself. ``socket``/``state_dir`` default through :func:`resolve_paths`."""
    socket: AbsPath | None = None
    socket_mode: FileMode = 0o660
    socket_group: str | None = None
    state_dir: AbsPath | None = None
    log_level: LogLevel = "info"
    log_format: LogFormat = "auto"
    shutdown_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    watchdog: bool = True


class IdentityConfig(_Strict):
    """``[identity]``: who is an admin besides root and the daemon's uid, and which users act for others."""
    admin_group: str | None = None
    service_users: list[str] = []


class VaultConfig(_Strict):
    """``[vault]``: the master key file, used when no systemd credential ``master-key`` is given."""
    key_file: AbsPath | None = None


class HealthConfig(_Strict):
    """``[health]``: the health-check scheduler."""
    interval: Annotated[float, Field(ge=10, le=86400)] = 300.0
    jitter: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 16
    timeout: Annotated[float, Field(ge=1, le=120)] = 10.0


class UsageConfig(_Strict):
    """``[usage]``: plans and which user is on which; every plan named must be defined."""
    default_plan: str = "standard"
    plans: dict[str, PlanConfig] = {"standard": PlanConfig(daily_limit=50_000)}
    users: dict[str, str] = {}

    @model_validator(mode="after")
    def _plans_exist(self) -> UsageConfig:
        known = ", ".join(sorted(self.plans)) or "none"
        wrong = [] if self.default_plan in self.plans else [f"default_plan {self.default_plan!r}"]
        wrong += [f"users.{user} = {plan!r}" for user, plan in sorted(self.users.items()) if plan not in self.plans]
        if wrong:   # plan and user names are not secrets; naming them is what makes the error useful
            raise ValueError(f"{'; '.join(wrong)}: no such plan (defined plans: {known})")
        return self


class SyncConfig(_Strict):
    """``[sync]``: the sync runner and scheduler (integd/sync*.py)."""
    stall_timeout: Annotated[float, Field(gt=0, le=86400)] = 600.0
    concurrency: Annotated[int, Field(ge=1, le=100)] = 4
    jitter: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    # streams whose deltas report no deletions (GitHub issues, Slack messages): every Nth run lists everything
    # and tombstones what is gone (0: only on demand or when a delta token expires)
    full_refresh_every: Annotated[int, Field(ge=0, le=100_000)] = 24


class WebhooksConfig(_Strict):
    """``[webhooks]``: the optional TCP listener for provider webhooks (off unless ``bind`` is set).

    ``bind`` is ``host:port`` and meant to sit behind a reverse proxy (TLS terminates there). The secrets are
    read from files (mode 0600 recommended), never written in this file.
    """
    bind: Annotated[str, Field(pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")] | None = None
    github_secret_file: AbsPath | None = None
    slack_signing_secret_file: AbsPath | None = None
    google_channel_token_file: AbsPath | None = None
    # Where providers reach this listener from outside (the reverse proxy's https URL; ``/webhooks/<provider>``
    # is appended). With it and ``google_channel_token_file`` set, integd registers a Drive push channel
    # (changes.watch) for every realtime Drive sync job, renews it before it expires and stops it when the job
    # goes (integd/sync_channels.py).
    public_url: HttpUrlStr | None = None
    # A channel's requested lifetime (Google caps the changes resource at about a week); renewed once less than
    # a quarter of it is left.
    google_channel_hours: Annotated[float, Field(ge=1, le=168)] = 144.0
    # Every other provider that signs its deliveries (connectors.webhooks.VERIFIERS: discord, dropbox, gitlab,
    # hubspot, jira, pipedrive): service name -> file holding its secret (Discord: the application's public key
    # in hex; Pipedrive: "user:password" of the webhook's Basic auth). Route: POST /webhooks/<service>.
    secret_files: dict[str, AbsPath] = {}
    max_body: Annotated[int, Field(ge=1024, le=26_214_400)] = 5_242_880


class SinkConfig(_Strict):
    """``[sinks.<name>]``: an outgoing webhook for domain events (``events`` are names or ``"*"``)."""
    url: HttpUrlStr
    events: list[str] = ["*"]
    secret_file: AbsPath | None = None
    timeout: Annotated[float, Field(gt=0, le=120)] = 10.0


class OAuthClientConfig(_Strict):
    """``[oauth.clients.<service>]``: our OAuth client registration at a provider (no secret in this file).

    The secret comes from ``client_secret_credential`` (a systemd credential name, read from
    ``$CREDENTIALS_DIRECTORY``) or ``client_secret_file``; none means a public client (PKCE only).
    """
    client_id: Annotated[str, Field(min_length=1, max_length=256)]
    client_secret_file: AbsPath | None = None
    client_secret_credential: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    auth_base_url: HttpUrlStr | None = None      # re-roots the provider's OAuth URLs (emulator, GHE host)
    tenant: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")] | None = None
    redirect_uri: HttpUrlStr = "http://127.0.0.1/callback"   # loopback: the port is chosen per flow


class OAuthProviderConfig(_Strict):
    """``[oauth.providers.<name>]``: a generic OAuth 2.0 service defined entirely here (no code)."""
    display_name: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    category: Literal["email", "chat", "storage", "development", "crm"] = "development"
    authorize_url: HttpUrlStr
    token_url: HttpUrlStr
    device_authorization_url: HttpUrlStr | None = None
    revocation_url: HttpUrlStr | None = None
    scopes: list[str] = []
    scope_separator: Literal[" ", ","] = " "
    api_base_url: HttpUrlStr
    identity_endpoint: Annotated[str, Field(pattern=r"^/[^\s#]*$")] = "/userinfo"
    client_auth: Literal["client_secret_basic", "client_secret_post", "none"] = "client_secret_basic"
    pkce: bool = True
    old_refresh_token_survives_rotation: bool = True
    rate_limit: RateLimitConfig = RateLimitConfig(per_minute=600, burst=20)   # nothing published: cautious


class OAuthConfig(_Strict):
    """``[oauth]``: token lifecycle settings, client registrations, generic providers."""
    refresh_margin: Annotated[float, Field(ge=0, le=3600)] = 300.0   # refresh this long before expiry
    clients: dict[str, OAuthClientConfig] = {}
    providers: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")], OAuthProviderConfig] = {}


class Config(_Strict):
    """The whole configuration. ``Config()`` is the all-defaults configuration.

    Example:
        >>> Config().health.interval
        300.0
    """
    daemon: DaemonConfig = DaemonConfig()
    identity: IdentityConfig = IdentityConfig()
    vault: VaultConfig = VaultConfig()
    health: HealthConfig = HealthConfig()
    usage: UsageConfig = UsageConfig()
    services: dict[str, ServiceConfig] = {}
    sinks: dict[str, SinkConfig] = {}
    oauth: OAuthConfig = OAuthConfig()
    sync: SyncConfig = SyncConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    _source: Path | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        """Equal settings are equal configurations, whichever file they came from."""
        return isinstance(other, Config) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # dict fields make a Config unhashable anyway

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from, or None when it is all defaults and environment."""
        return self._source


# ------------------------------------------------------------------------------------------------ loading

def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def _xdg(env: Mapping[str, str], var: str, fallback: str) -> Path:
    """An XDG base directory; relative values are invalid per the spec and ignored."""
    value = env.get(var, "")
    return Path(value) if value.startswith("/") else _home(env) / fallback


def _first_dir(value: str | None) -> Path | None:
    """systemd joins several directories with ':'; the first is ours."""
    first = (value or "").split(":")[0]
    return Path(first) if first.startswith("/") else None


def _find_config_file(path: Path | None, env: Mapping[str, str], uid: int) -> tuple[Path, bool]:
    """Return (candidate file, explicit?)."""
    if path is not None:
        return Path(path), True
    if env.get("INTEGD_CONFIG"):
        return Path(env["INTEGD_CONFIG"]), True
    conf_dir = _first_dir(env.get("CONFIGURATION_DIRECTORY"))
    if conf_dir is not None:
        return conf_dir / "config.toml", False
    if uid == 0:
        return Path("/etc/integd/config.toml"), False
    return _xdg(env, "XDG_CONFIG_HOME", ".config") / "integd" / "config.toml", False


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:   # the message carries only line and column, no content
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: the file is not UTF-8 (byte {exc.start})"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the configuration file: {exc.strerror}"]) from exc


def _describe_input(error: Mapping[str, Any]) -> str:
    """What was given, without echoing it: its type, or its relation to the allowed range."""
    kind = str(error.get("type", ""))
    if kind.startswith(("greater_than", "too_short")):
        return "got a value below the minimum"
    if kind.startswith(("less_than", "too_long")):
        return "got a value above the maximum"
    if kind == "missing":
        return "the key is required"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1])
        return f"unknown key; expected one of: {', '.join(allowed)}" if allowed else "unknown key"
    given = error.get("input")
    if isinstance(given, (dict, list, BaseModel)) and kind == "value_error":
        return ""   # a rule across keys: its message names them
    return f"got {type(given).__name__}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found at ``loc`` (dict keys skipped), for "unknown key" hints."""
    model: Any = Config
    skip_key = False
    for part in loc:
        if skip_key:
            skip_key = False
            continue
        field = model.model_fields.get(str(part)) if isinstance(model, type) else None
        if field is None:
            return []
        annotation = field.annotation
        if get_origin(annotation) is dict:
            annotation, skip_key = get_args(annotation)[1], True
        model = annotation
    return sorted(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _problem_lines(exc: ValidationError, file_label: str, env_keys: dict[tuple[str, str], str]) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        source = env_keys.get(loc[:2], file_label) if len(loc) >= 2 else file_label
        key = ".".join(loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        given = _describe_input(error)
        lines.append(f"{source}: {key}: {message} ({given})" if given else f"{source}: {key}: {message}")
    return lines


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """Merge overrides into the raw document; return which keys came from which variable."""
    applied: dict[tuple[str, str], str] = {}
    for var, (section, key) in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        if key in ("socket", "state_dir", "key_file") and not value.startswith("~"):
            value = os.path.abspath(value)   # a command-line style relative path means relative to cwd
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError([f"${var}: cannot override {section}.{key}: [{section}] is not a table in the file"])
        table[key] = value
        applied[(section, key)] = f"${var}"
    return applied


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None, uid: int | None = None) -> Config:
    """Read, merge and validate the configuration; raise :class:`ConfigError` listing every problem.

    ``env`` defaults to ``os.environ`` and ``uid`` to ``os.geteuid()`` (they pick the default file).

    Example:
        >>> load_config(env={"HOME": "/nonexistent"}, uid=1000).daemon.log_level
        'info'
    """
    env = os.environ if env is None else env
    uid = os.geteuid() if uid is None else uid
    candidate, explicit = _find_config_file(path, env, uid)
    raw: dict[str, Any] = {}
    source: Path | None = None
    if candidate.exists() or explicit:
        if explicit and not candidate.exists():
            raise ConfigError([f"{candidate}: configuration file not found"])
        raw, source = _read_toml(candidate), candidate
    env_keys = _apply_env(raw, env)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_problem_lines(exc, str(candidate), env_keys)) from None
    config._source = source
    return config


def check_config_file(path: Path | str) -> list[str]:
    """Problems with one configuration file (environment ignored), for ``integd config check FILE``.

    Example:
        >>> check_config_file("/nonexistent/config.toml")
        ['/nonexistent/config.toml: configuration file not found']
    """
    try:
        load_config(Path(path), env={})
    except ConfigError as exc:
        return exc.problems
    return []


# -------------------------------------------------------------------------------------------------- paths

@dataclass(frozen=True)
class Paths:
    """Where the daemon keeps its state and its socket, and which file configured it."""
    state_dir: Path
    socket: Path
    config_file: Path | None


def resolve_paths(config: Config, env: Mapping[str, str] | None = None, uid: int | None = None) -> Paths:
    """Fill in the directories the configuration leaves open, from systemd's, root's or XDG conventions.

    Example:
        >>> resolve_paths(Config(), env={"STATE_DIRECTORY": "/var/lib/integd",
        ...                              "RUNTIME_DIRECTORY": "/run/integd"}).socket
        PosixPath('/run/integd/integd.sock')
    """
    env = os.environ if env is None else env
    uid = os.geteuid() if uid is None else uid
    state = config.daemon.state_dir or _first_dir(env.get("STATE_DIRECTORY"))
    if state is None:
        state = Path("/var/lib/integd") if uid == 0 else _xdg(env, "XDG_STATE_HOME", ".local/state") / "integd"
    sock = config.daemon.socket
    if sock is None:
        runtime = _first_dir(env.get("RUNTIME_DIRECTORY"))
        xdg_runtime = _first_dir(env.get("XDG_RUNTIME_DIR"))
        if runtime is not None:
            sock = runtime / "integd.sock"
        elif uid == 0:
            sock = Path("/run/integd/integd.sock")
        elif xdg_runtime is not None:
            sock = xdg_runtime / "integd" / "integd.sock"
        else:
            sock = state / "integd.sock"
    if len(os.fsencode(sock)) > _SUN_PATH_MAX:
        raise ConfigError([f"daemon.socket: the socket path is {len(os.fsencode(sock))} bytes long; a Unix "
                           f"socket path must be at most {_SUN_PATH_MAX} bytes (set daemon.socket or INTEGD_SOCKET)"])
    return Paths(state_dir=state, socket=sock, config_file=config.source)


# ------------------------------------------------------------------------------------------ show and reload

def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as JSON-able data for ``integd config show``.

    Paths become strings and ``socket_mode`` an octal string; the configuration holds no secret values
    (only ``*_file`` paths), so nothing needs masking beyond what the serializers already do.

    Example:
        >>> redacted(Config())["daemon"]["socket_mode"]
        '0660'
    """
    return config.model_dump(mode="json")


_RELOADABLE_PREFIXES = ("health.", "usage.", "daemon.log_level")


def _is_reloadable(key: str) -> bool:
    if key.startswith(_RELOADABLE_PREFIXES):
        return True
    parts = key.split(".")
    return len(parts) >= 3 and parts[0] == "services" and parts[2] in ("rate_limit", "timeout")


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):   # an empty table has no leaves: adding to it shows as a new leaf key
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value
    return out


def _flat(config: Config, services: set[str]) -> dict[str, Any]:
    """Flatten, giving a service absent from this side its defaults, so adding one is not a base_url change."""
    data = config.model_dump(mode="json")
    defaults = ServiceConfig().model_dump(mode="json")
    data["services"] = {name: data["services"].get(name, defaults) for name in services}
    return _flatten(data, "", {})


def diff_reloadable(old: Config, new: Config) -> list[str]:
    """The dotted keys a SIGHUP may apply live; :class:`ConfigError` if any other key changed.

    Live keys: ``health.*``, ``usage.*``, ``services.*.rate_limit``, ``services.*.timeout``,
    ``daemon.log_level``. Everything else (socket, state_dir, vault.key_file, base URLs, sinks...) needs a
    restart.

    Example:
        >>> diff_reloadable(Config(), Config(health=HealthConfig(interval=60)))
        ['health.interval']
    """
    services = set(old.services) | set(new.services)
    before, after = _flat(old, services), _flat(new, services)
    missing = object()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k, missing) != after.get(k, missing))
    fixed = [key for key in changed if not _is_reloadable(key)]
    if fixed:
        raise ConfigError([f"{key}: changed, but it cannot be reloaded; restart integd to apply it"
                           for key in fixed])
    return changed
