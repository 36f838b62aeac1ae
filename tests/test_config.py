"""Start-up configuration: embedded defaults, and one clear line for every bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpdesk.config import EX_CONFIG, ConfigError, load_settings


def test_no_configuration_gives_the_embedded_mode(tmp_path: Path) -> None:
    settings = load_settings({"HELPDESK_DATA_DIR": str(tmp_path)})
    assert settings.database_url == "sqlite+aiosqlite:///var/helpdesk.db"
    assert settings.is_sqlite and not settings.is_production
    assert settings.redis_url is None and settings.smtp is None and settings.imap is None
    assert settings.support_address == "support@localhost"
    assert settings.widget_origins == ("http://127.0.0.1:8000",)


def test_embedded_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_settings({"HELPDESK_DATA_DIR": str(tmp_path)}).secret_key
    second = load_settings({"HELPDESK_DATA_DIR": str(tmp_path)}).secret_key
    assert len(first) >= 32 and first == second
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_production_database_requires_a_secret_key() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({"HELPDESK_DATABASE_URL": "postgresql+asyncpg://h@db/helpdesk"})
    assert error.value.variable == "HELPDESK_SECRET_KEY"


def test_smtp_and_imap_urls_are_understood() -> None:
    settings = load_settings(
        {
            "HELPDESK_DATABASE_URL": "postgresql+asyncpg://h@db/helpdesk",
            "HELPDESK_SECRET_KEY": "x" * 40,
            "HELPDESK_SMTP_URL": "smtp://user%40kurs.no:p%40ss@relay.kurs.no:587",
            "HELPDESK_IMAP_URL": "imap://support:pw@mail.kurs.no:143/INBOX?tls=starttls&processed=Done",
        }
    )
    assert settings.smtp is not None and settings.imap is not None
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.security) == (
        "relay.kurs.no",
        587,
        "starttls",
    )
    assert settings.smtp.username == "user@kurs.no" and settings.smtp.password == "p@ss"
    assert settings.imap.mailbox == "INBOX" and settings.imap.processed_folder == "Done"
    assert load_settings({"HELPDESK_SMTP_URL": "smtps://relay"}).smtp.port == 465  # type: ignore[union-attr]
    assert load_settings({"HELPDESK_SMTP_URL": "smtp://relay?tls=off"}).smtp.security == "off"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HELPDESK_DATABASE_URL", "mysql://db/helpdesk"),
        ("HELPDESK_REDIS_URL", "http://redis"),
        ("HELPDESK_SMTP_URL", "smtp://relay?tls=maybe"),
        ("HELPDESK_SMTP_URL", "smtp://relay:notaport"),
        ("HELPDESK_IMAP_URL", "imaps://mail.kurs.no/INBOX"),
        ("HELPDESK_SUPPORT_ADDRESS", "support at kurs.no"),
        ("HELPDESK_SUPPORT_ADDRESS", "support+x@kurs.no"),
        ("HELPDESK_BASE_URL", "kurs.no"),
        ("HELPDESK_WIDGET_ORIGINS", "https://kurs.no/path"),
        ("HELPDESK_PLATFORM_WEBHOOK_URL", "https://platform.kurs.no/hooks"),
        ("HELPDESK_SECRET_KEY", "short"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings({variable: value, "HELPDESK_DATA_DIR": str(tmp_path)})
    # The webhook URL without its secret is reported on the secret.
    assert error.value.variable.startswith(variable.rsplit("_", 1)[0])


def test_cli_exits_78_with_one_line_for_a_bad_value(tmp_path: Path) -> None:
    env = {**os.environ, "HELPDESK_DATABASE_URL": "mysql://db", "HELPDESK_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk", "migrate"], env=env, capture_output=True, text=True
    )
    assert result.returncode == EX_CONFIG
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("HELPDESK_DATABASE_URL: ")


def test_secrets_can_come_from_files_as_compose_secrets_do(tmp_path: Path) -> None:
    secret = tmp_path / "secret_key"
    secret.write_text("from-a-file-0123456789abcdef\n")
    settings = load_settings({
        "HELPDESK_DATABASE_URL": "postgresql+asyncpg://helpdesk@db/helpdesk",
        "HELPDESK_SECRET_KEY_FILE": str(secret),
        "HELPDESK_DATA_DIR": str(tmp_path),
    })
    assert settings.secret_key == "from-a-file-0123456789abcdef"


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"HELPDESK_SECRET_KEY_FILE": str(tmp_path / "missing")})
    assert refused.value.variable == "HELPDESK_SECRET_KEY_FILE"


def test_logs_are_json_lines_in_production_and_text_embedded(tmp_path: Path) -> None:
    embedded = load_settings({"HELPDESK_DATA_DIR": str(tmp_path)})
    production = load_settings({
        "HELPDESK_DATABASE_URL": "postgresql+asyncpg://helpdesk@db/helpdesk",
        "HELPDESK_SECRET_KEY": "0123456789abcdef0123",
    })
    assert (embedded.log_format, production.log_format) == ("text", "json")
    with pytest.raises(ConfigError) as refused:
        load_settings({"HELPDESK_DATA_DIR": str(tmp_path), "HELPDESK_LOG_FORMAT": "xml"})
    assert refused.value.variable == "HELPDESK_LOG_FORMAT"
