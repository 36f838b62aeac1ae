"""compose.yaml is a valid Compose file with the services DESIGN §1 names (no Docker needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose.yaml"
SERVICES = {"postgres", "redis", "migrate", "web", "worker", "scheduler", "mail-fetcher"}


def load_compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def test_compose_file_matches_the_compose_specification() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    checker = checker or shutil.which("check-jsonschema")
    assert checker, "check-jsonschema is not installed (it is in the dev extra)"

    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_has_the_seven_services() -> None:
    assert set(load_compose()["services"]) == SERVICES


def test_web_waits_for_migration_and_is_checked_by_readyz() -> None:
    web = load_compose()["services"]["web"]

    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(web["healthcheck"]["test"])


def test_every_helpdesk_service_reads_its_secrets_from_files_and_shares_the_data_volume() -> None:
    compose = load_compose()
    services = compose["services"]

    for name in SERVICES - {"postgres", "redis"}:
        environment = services[name]["environment"]
        assert environment["HELPDESK_SECRET_KEY_FILE"] == "/run/secrets/secret_key", name
        assert environment["HELPDESK_DATABASE_URL_FILE"] == "/run/secrets/database_url", name
        assert {"secret_key", "database_url"} <= set(services[name]["secrets"]), name
        assert environment["HELPDESK_REDIS_URL"].startswith("redis://redis:"), name
        assert "helpdesk-data:/data" in services[name]["volumes"], name
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/")
    assert set(compose["secrets"]) == {"secret_key", "postgres_password", "database_url"}


def test_one_scheduler_one_fetcher_several_workers() -> None:
    services = load_compose()["services"]

    assert services["scheduler"]["deploy"]["replicas"] == 1
    assert services["mail-fetcher"]["deploy"]["replicas"] == 1
    assert services["worker"]["deploy"]["replicas"] >= 2
