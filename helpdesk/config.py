"""Settings read from HELPDESK_* environment variables (DESIGN §4).

Every variable is parsed and checked once at start-up; a bad value raises `ConfigError`
naming the variable, which the CLI prints as one line and exits with EX_CONFIG (78).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from helpdesk.tickets.service_levels import ServiceLevelPolicy, default_policy, parse_policy

EX_CONFIG = 78


class ConfigError(Exception):
    """A configuration value is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class SmtpSettings(msgspec.Struct, frozen=True):
    """Where outgoing mail is relayed; `security` is starttls, tls (implicit) or off."""

    host: str
    port: int
    security: str
    username: str | None = None
    password: str | None = None


class ImapSettings(msgspec.Struct, frozen=True):
    """The support mailbox that `helpdesk fetch-mail` reads."""

    host: str
    port: int
    security: str
    username: str
    password: str
    mailbox: str = "INBOX"
    processed_folder: str | None = None


class RetentionSettings(msgspec.Struct, frozen=True):
    """Retention windows (DESIGN §7), each `HELPDESK_RETENTION_<NAME>`; see retention.policy."""

    threads_months: int = 24
    delivery_logs_months: int = 12
    audit_months: int = 24
    codes_minutes: int = 10
    privacy_links_days: int = 7
    exports_days: int = 7
    sessions_days: int = 30
    ignored_mail_days: int = 30
    order_years: int = 5
    # Solved tickets are closed after this many days without a learner message; 0 = never.
    auto_close_days: int = 7


# Variable suffix -> (field, smallest, largest allowed value).
_RETENTION_VARIABLES = {
    "THREADS_MONTHS": ("threads_months", 1, 240),
    "DELIVERY_LOGS_MONTHS": ("delivery_logs_months", 1, 240),
    "AUDIT_MONTHS": ("audit_months", 1, 240),
    "CODES_MINUTES": ("codes_minutes", 1, 1440),
    "PRIVACY_LINKS_DAYS": ("privacy_links_days", 1, 365),
    "EXPORTS_DAYS": ("exports_days", 1, 365),
    "SESSIONS_DAYS": ("sessions_days", 1, 365),
    "IGNORED_MAIL_DAYS": ("ignored_mail_days", 1, 3650),
    "ORDERS_YEARS": ("order_years", 1, 30),
    "AUTO_CLOSE_DAYS": ("auto_close_days", 0, 365),
}


DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/helpdesk.db"
DEFAULT_SUPPORT_ADDRESS = "support@localhost"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_WIDGET_ORIGINS = ("http://127.0.0.1:8000",)


class Settings(msgspec.Struct, frozen=True):
    """All runtime configuration; built by `load_settings`, never read from globals."""

    database_url: str = DEFAULT_DATABASE_URL
    data_dir: Path = Path("var")
    redis_url: str | None = None
    smtp: SmtpSettings | None = None
    imap: ImapSettings | None = None
    support_address: str = DEFAULT_SUPPORT_ADDRESS
    base_url: str = DEFAULT_BASE_URL
    secret_key: str = ""
    platform_api_key: str | None = None
    widget_secret: str | None = None
    widget_origins: tuple[str, ...] = DEFAULT_WIDGET_ORIGINS
    # Widget and /support abuse brakes (helpdesk.widget.limits): posts per conversation and
    # per client address each minute, new conversations per client address each hour.
    widget_posts_per_minute: int = 20
    widget_ip_posts_per_minute: int = 120
    widget_new_conversations_per_hour: int = 30
    platform_webhook_url: str | None = None
    platform_webhook_secret: str | None = None
    authserv_id: str | None = None
    # Not in DESIGN's table: operational knobs with safe defaults.
    acknowledge_new_tickets: bool = True
    max_message_bytes: int = 25 * 1024 * 1024
    # How long a worker holds an outbox row it is sending; a worker that dies mid-send
    # delays that mail by this much (then another worker takes it over).
    outbox_lease_seconds: int = 600
    # First-response and resolution targets in business hours (helpdesk.tickets.service_levels).
    service_levels: ServiceLevelPolicy = msgspec.field(default_factory=default_policy)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    # Bearer token required at /metrics when set (otherwise keep /metrics off the internet).
    metrics_token: str | None = None
    # "json" (one object per line, for log shippers) or "text"; json in production.
    log_format: str = "text"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_production(self) -> bool:
        """DESIGN §4: any database that is not SQLite means production."""
        return not self.is_sqlite

    @property
    def support_domain(self) -> str:
        return self.support_address.rpartition("@")[2]


DEFAULT_TASK_QUEUE = "helpdesk:tasks"
_TASK_QUEUE = re.compile(r"[A-Za-z0-9:._-]{1,100}")


def task_queue_name(environ: Mapping[str, str] | None = None) -> str:
    """`HELPDESK_TASK_QUEUE`: the Redis stream of tasks, and the prefix of this deployment's
    live-update channels (pub/sub channels are server-wide, not per Redis database)."""
    env = os.environ if environ is None else environ
    name = env.get("HELPDESK_TASK_QUEUE", "").strip() or DEFAULT_TASK_QUEUE
    if not _TASK_QUEUE.fullmatch(name):
        raise ConfigError("HELPDESK_TASK_QUEUE", "use up to 100 of A-Z a-z 0-9 : . _ -")
    return name


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build `Settings` from the environment, raising `ConfigError` on the first bad value."""
    env = dict(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = env.get(f"HELPDESK_{name}", "").strip()
        if not value and env.get(f"HELPDESK_{name}_FILE", "").strip():
            value = _read_secret_file(f"HELPDESK_{name}_FILE", env[f"HELPDESK_{name}_FILE"])
        return value or None

    database_url = get("DATABASE_URL") or DEFAULT_DATABASE_URL
    _check_database_url(database_url)
    data_dir = Path(get("DATA_DIR") or "var")
    settings = Settings(
        database_url=database_url,
        data_dir=data_dir,
        redis_url=_check_url("HELPDESK_REDIS_URL", get("REDIS_URL"), ("redis", "rediss")),
        smtp=parse_smtp_url(get("SMTP_URL")),
        imap=parse_imap_url(get("IMAP_URL")),
        support_address=_check_address("HELPDESK_SUPPORT_ADDRESS", get("SUPPORT_ADDRESS")),
        base_url=(
            _check_url("HELPDESK_BASE_URL", get("BASE_URL"), ("http", "https")) or DEFAULT_BASE_URL
        ).rstrip("/"),
        platform_api_key=get("PLATFORM_API_KEY"),
        widget_secret=get("WIDGET_SECRET"),
        widget_origins=_parse_origins(get("WIDGET_ORIGINS")),
        platform_webhook_url=_check_url(
            "HELPDESK_PLATFORM_WEBHOOK_URL", get("PLATFORM_WEBHOOK_URL"), ("http", "https")
        ),
        platform_webhook_secret=get("PLATFORM_WEBHOOK_SECRET"),
        authserv_id=get("AUTHSERV_ID"),
        acknowledge_new_tickets=_parse_switch("HELPDESK_ACKNOWLEDGEMENTS", get("ACKNOWLEDGEMENTS")),
        max_message_bytes=_parse_megabytes("HELPDESK_MAX_MESSAGE_MB", get("MAX_MESSAGE_MB")),
        outbox_lease_seconds=_parse_seconds(
            "HELPDESK_OUTBOX_LEASE_SECONDS", get("OUTBOX_LEASE_SECONDS"), 600, low=5, high=3600
        ),
        service_levels=_parse_service_levels(
            get("SERVICE_LEVELS"), get("BUSINESS_HOURS"), get("BUSINESS_TIMEZONE")
        ),
        retention=_parse_retention(env),
        metrics_token=get("METRICS_TOKEN"),
        log_format=_parse_log_format(
            get("LOG_FORMAT"), production=not database_url.startswith("sqlite")
        ),
    )
    if settings.platform_webhook_url and not settings.platform_webhook_secret:
        raise ConfigError(
            "HELPDESK_PLATFORM_WEBHOOK_SECRET", "required when HELPDESK_PLATFORM_WEBHOOK_URL is set"
        )
    secret = get("SECRET_KEY")
    if secret is None:
        if settings.is_production:
            raise ConfigError("HELPDESK_SECRET_KEY", "required with a non-SQLite database")
        secret = _embedded_secret_key(data_dir)
    elif len(secret) < 16:
        raise ConfigError("HELPDESK_SECRET_KEY", "must be at least 16 characters")
    return msgspec.structs.replace(settings, secret_key=secret)


def _parse_seconds(variable: str, value: str | None, default: int, *, low: int, high: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise ConfigError(variable, f"expected a whole number of seconds from {low} to {high}")
    return int(value)


def _read_secret_file(variable: str, path: str) -> str:
    """`HELPDESK_X_FILE=/run/secrets/x`: the value of HELPDESK_X read from a file
    (Docker/Compose secrets), so secrets stay out of the environment and `ps`."""
    try:
        return Path(path.strip()).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"cannot read {path.strip()}: {exc.__class__.__name__}"
        raise ConfigError(variable, problem) from None


def _parse_log_format(value: str | None, *, production: bool) -> str:
    if value is None:
        return "json" if production else "text"
    if value.lower() not in ("json", "text"):
        raise ConfigError("HELPDESK_LOG_FORMAT", "must be json or text")
    return value.lower()


def _parse_retention(env: Mapping[str, str]) -> RetentionSettings:
    """HELPDESK_RETENTION_* (whole numbers within sensible bounds); unset keeps the default."""
    values: dict[str, int] = {}
    for suffix, (field, low, high) in _RETENTION_VARIABLES.items():
        variable = f"HELPDESK_RETENTION_{suffix}"
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ConfigError(variable, f"expected a whole number from {low} to {high}")
        values[field] = int(raw)
    return RetentionSettings(**values)


def _parse_service_levels(
    targets: str | None, hours: str | None, zone: str | None
) -> ServiceLevelPolicy:
    """HELPDESK_SERVICE_LEVELS, _BUSINESS_HOURS and _BUSINESS_TIMEZONE; defaults if unset."""
    if targets is None and hours is None and zone is None:
        return default_policy()
    checks = (
        ("HELPDESK_BUSINESS_TIMEZONE", None, None),
        ("HELPDESK_BUSINESS_HOURS", None, hours),
        ("HELPDESK_SERVICE_LEVELS", targets, hours),
    )
    policy = default_policy()
    for variable, with_targets, with_hours in checks:
        try:
            policy = parse_policy(with_targets, with_hours, zone)
        except ValueError as exc:
            raise ConfigError(variable, str(exc)) from None
    return policy


def _parse_switch(variable: str, value: str | None, default: bool = True) -> bool:
    if value is None:
        return default
    if value.lower() in ("on", "true", "yes", "1"):
        return True
    if value.lower() in ("off", "false", "no", "0"):
        return False
    raise ConfigError(variable, "expected on or off")


def _parse_megabytes(variable: str, value: str | None, default: int = 25) -> int:
    if value is None:
        return default * 1024 * 1024
    if not value.isdigit() or not 1 <= int(value) <= 200:
        raise ConfigError(variable, "expected a whole number of megabytes from 1 to 200")
    return int(value) * 1024 * 1024


def _check_database_url(url: str) -> None:
    scheme = url.partition("://")[0]
    if scheme not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
        raise ConfigError(
            "HELPDESK_DATABASE_URL",
            f"unsupported scheme {scheme!r}; use sqlite+aiosqlite:// or postgresql+asyncpg://",
        )


def _check_url(variable: str, value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(variable, f"expected a {'/'.join(schemes)} URL with a host")
    return value


def _check_address(variable: str, value: str | None) -> str:
    if value is None:
        return DEFAULT_SUPPORT_ADDRESS
    local, at, domain = value.partition("@")
    if not at or not local or not domain or any(c in value for c in " <>\r\n,;"):
        raise ConfigError(variable, "expected a plain address like support@example.no")
    if "+" in local:
        raise ConfigError(variable, "must not contain '+'; it is used for signed reply addresses")
    return value


def _parse_origins(value: str | None) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_WIDGET_ORIGINS
    origins = tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise ConfigError("HELPDESK_WIDGET_ORIGINS", f"{origin!r} is not an origin")
    return origins


def _port(variable: str, parts: object, default: int) -> int:
    try:
        return parts.port or default  # type: ignore[attr-defined]
    except ValueError as exc:
        raise ConfigError(variable, "bad port") from exc


def parse_smtp_url(value: str | None) -> SmtpSettings | None:
    """`smtp://user:pass@host:587` (STARTTLS), `smtps://…:465`, `smtp://host:25?tls=off`."""
    if value is None:
        return None
    name = "HELPDESK_SMTP_URL"
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(name, "expected smtp://[user:pass@]host[:port] or smtps://…")
    tls = parse_qs(parts.query).get("tls", [""])[0]
    if parts.scheme == "smtps":
        security, default_port = "tls", 465
    elif tls in ("", "starttls"):
        security, default_port = "starttls", 587
    elif tls == "off":
        security, default_port = "off", 25
    else:
        raise ConfigError(name, f"tls={tls!r} is not one of starttls, off")
    return SmtpSettings(
        host=parts.hostname,
        port=_port(name, parts, default_port),
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def parse_imap_url(value: str | None) -> ImapSettings | None:
    """`imaps://user:pass@host:993/INBOX`, `imap://…:143/INBOX?tls=starttls|off`."""
    if value is None:
        return None
    name = "HELPDESK_IMAP_URL"
    parts = urlsplit(value)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ConfigError(name, "expected imaps://user:pass@host[:port]/MAILBOX")
    if not parts.username or parts.password is None:
        raise ConfigError(name, "user and password are required")
    query = parse_qs(parts.query)
    tls = query.get("tls", [""])[0]
    if parts.scheme == "imaps":
        security, default_port = "tls", 993
    elif tls in ("starttls", ""):
        security, default_port = "starttls", 143
    elif tls == "off":
        security, default_port = "off", 143
    else:
        raise ConfigError(name, f"tls={tls!r} is not one of starttls, off")
    return ImapSettings(
        host=parts.hostname,
        port=_port(name, parts, default_port),
        security=security,
        username=unquote(parts.username),
        password=unquote(parts.password),
        mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
        processed_folder=query.get("processed", [None])[0],
    )


def _embedded_secret_key(data_dir: Path) -> str:
    """Generate the embedded mode's secret once and keep it in `<data dir>/secret_key`."""
    path = data_dir / "secret_key"
    try:
        if path.exists():
            return path.read_text().strip()
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key
    except FileExistsError:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError("HELPDESK_DATA_DIR", f"cannot write {path}: {exc.strerror}") from exc
