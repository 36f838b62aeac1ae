"""The `helpdesk` command line as an operator on a fresh machine would use it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpdesk.app import create_app
from helpdesk.config import load_settings


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helpdesk", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """A fresh embedded installation under tmp_path, configured only by its data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATA_DIR"] = str(tmp_path / "var")
    env["HELPDESK_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'helpdesk.db'}"
    return env


def test_demo_data_fills_an_empty_database_once(embedded_env: dict[str, str]) -> None:
    assert run_cli(embedded_env, "migrate").returncode == 0
    first = run_cli(embedded_env, "demo-data")
    assert first.returncode == 0, first.stderr
    assert "demo@helpdesk.local" in first.stderr
    second = run_cli(embedded_env, "demo-data")
    assert second.returncode == 0
    assert "not empty" in second.stderr and "nothing changed" in second.stderr


async def test_token_from_the_cli_lists_demo_tickets_in_the_api(
    embedded_env: dict[str, str],
) -> None:
    assert run_cli(embedded_env, "migrate").returncode == 0
    assert run_cli(embedded_env, "demo-data").returncode == 0
    created = run_cli(embedded_env, "token", "create", "demo@helpdesk.local")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert "\n" not in token and len(token) >= 32

    app = create_app(load_settings(embedded_env))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        headers = {"Authorization": f"Bearer {token}"}
        listing = await http.get("/api/v1/tickets", headers=headers)
        assert listing.status_code == 200, listing.text
        subjects = {item["subject"] for item in listing.json()["items"]}
        assert "Kursbevis mangler etter fullført HMS-kurs" in subjects
        number = listing.json()["items"][0]["number"]
        detail = await http.get(f"/api/v1/tickets/{number}", headers=headers)
        assert detail.status_code == 200 and detail.json()["messages"]
        refused = await http.get("/api/v1/tickets", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401


def test_operator_add_with_password_from_stdin_then_duplicate_is_refused(
    embedded_env: dict[str, str],
) -> None:
    assert run_cli(embedded_env, "migrate").returncode == 0
    added = run_cli(
        embedded_env,
        "operator",
        "add",
        "Siv@Kurs.no",
        "--name",
        "Siv",
        "--role",
        "admin",
        "--password-stdin",
        stdin="hemmelig passord\n",
    )
    assert added.returncode == 0, added.stderr
    again = run_cli(embedded_env, "operator", "add", "siv@kurs.no", "--name", "Siv")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    unknown = run_cli(embedded_env, "token", "create", "nobody@kurs.no")
    assert unknown.returncode == 1 and "No operator" in unknown.stderr
