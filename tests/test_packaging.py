"""An installed wheel finds its templates, mail templates and migrations, and can migrate.

The wheel is built once per module (a few seconds: pip builds it with hatchling) and
installed with `pip install --target` into a folder that is put first on PYTHONPATH,
because the dependencies are already in this virtualenv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpdesk import resources

REPOSITORY = Path(__file__).resolve().parent.parent
SHIPPED_FOLDERS = ("templates", "mail", "migrations")


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        timeout=120,
    )


def _source_files(folder: str) -> list[str]:
    return sorted(
        path.relative_to(REPOSITORY).as_posix()
        for path in (REPOSITORY / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "--no-deps", "--wheel-dir", str(folder), str(REPOSITORY))
    (built,) = folder.glob("helpdesk-*.whl")
    return built


def test_checkout_uses_the_folders_at_the_repository_root() -> None:
    assert resources.migrations_dir() == REPOSITORY / "migrations"
    assert resources.templates_dir() == REPOSITORY / "templates"
    assert resources.mail_dir() == REPOSITORY / "mail"
    assert resources.alembic_ini() == REPOSITORY / "alembic.ini"


def test_wheel_carries_templates_mail_migrations_and_alembic_ini(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = {"helpdesk/_data/alembic.ini", "helpdesk/_data/migrations/env.py"}
    for folder in SHIPPED_FOLDERS:
        expected.update(f"helpdesk/_data/{name}" for name in _source_files(folder))

    assert expected - names == set()
    assert any(name.startswith("helpdesk/_data/migrations/versions/0001_") for name in names)


CHECK_INSTALLED = """
import asyncio, json, sys
import helpdesk, helpdesk.resources as r
from helpdesk.migrate import upgrade_database
from sqlalchemy import create_engine, inspect

asyncio.run(upgrade_database("sqlite+aiosqlite:///" + sys.argv[1]))
tables = inspect(create_engine("sqlite:///" + sys.argv[1])).get_table_names()
print(json.dumps({
    "package": helpdesk.__file__,
    "paths": [str(p) for p in (r.templates_dir(), r.mail_dir(), r.migrations_dir(),
                               r.alembic_ini())],
    "tables": tables,
}))
"""


def test_installed_wheel_migrates_a_new_sqlite_database(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--no-compile", "--target", str(site), str(wheel))
    database = tmp_path / "var" / "helpdesk.db"
    environment = {**os.environ, "PYTHONPATH": str(site)}

    result = subprocess.run(
        [sys.executable, "-c", CHECK_INSTALLED, str(database)],
        cwd=tmp_path,  # not the checkout, whose helpdesk/ would shadow the installed one
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["package"]).is_relative_to(site)
    for path in map(Path, report["paths"]):
        assert path.is_relative_to(site / "helpdesk" / "_data") and path.exists(), path
    assert {"tickets", "messages", "learners", "alembic_version"} <= set(report["tables"])
