"""What an operator sees of ingested mail through the API, and the `helpdesk ingest` pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from factories import add_operator, bearer
from mail_factory import make_mail

from helpdesk.inbound.pipeline import ingest_raw
from helpdesk.outbound.acknowledgements import write_acknowledgements


async def test_api_shows_thread_reason_reply_text_machine_mark_and_attachments(
    runtime, client
) -> None:
    token = await add_operator(runtime)
    raw = make_mail(
        body="Her er kvitteringen.\n\nOn Tue, Kari wrote:\n> gammel tekst",
        message_id="<k1@mail.example.no>",
        attachments=[("Kvittering_Ødegård.pdf", "application/pdf", b"%PDF-1.4 kvittering", None)],
    )
    created = await ingest_raw(runtime, raw, "test")
    auto = make_mail(
        subject="Automatisk svar: Spørsmål",
        in_reply_to="<k1@mail.example.no>",
        headers={"Auto-Submitted": "auto-replied"},
    )
    await ingest_raw(runtime, auto, "test")
    assert await write_acknowledgements(runtime) == 1  # the outbox worker writes it

    detail = (await client.get(f"/api/v1/tickets/{created.ticket}", headers=bearer(token))).json()
    ack, first, second = sorted(detail["messages"], key=lambda m: m["direction"] != "outbound")
    assert ack["author"]["kind"] == "system" and ack["status"] == "queued"
    assert first["thread_reason"] == "new" and first["machine"] is None
    assert first["reply_text"].strip() == "Her er kvitteringen."
    assert "gammel tekst" in first["text"]
    assert second["machine"] == "auto-reply"
    assert second["thread_reason"].startswith("message-id")
    [attachment] = first["attachments"]
    assert attachment["filename"] == "Kvittering_Ødegård.pdf"

    url = f"/api/v1/attachments/{attachment['id']}"
    download = await client.get(url, headers=bearer(token))
    assert download.status_code == 200
    assert download.content == b"%PDF-1.4 kvittering"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "UTF-8''Kvittering_%C3%98deg%C3%A5rd.pdf" in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(url)).status_code == 401
    missing = await client.get("/api/v1/attachments/999999", headers=bearer(token))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def _cli(env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "helpdesk", "ingest", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def _env(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update(
        HELPDESK_DATA_DIR=str(tmp_path / "var"),
        HELPDESK_DATABASE_URL=database_url,
        HELPDESK_SUPPORT_ADDRESS="support@kurs.example",
    )
    return env


def test_ingest_pipe_prints_one_json_line_per_message(tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'var' / 'h.db'}")
    assert subprocess.run([sys.executable, "-m", "helpdesk", "migrate"], env=env).returncode == 0
    mail = make_mail()
    piped = _cli(env, stdin=mail)
    assert piped.returncode == 0, piped.stderr
    first = json.loads(piped.stdout)
    assert first["status"] == "created" and isinstance(first["ticket"], int)
    assert first["reason"] == "new"

    again = tmp_path / "again.eml"
    again.write_bytes(mail)
    other = tmp_path / "other.eml"
    other.write_bytes(make_mail(subject="Annet spørsmål"))
    from_files = _cli(env, str(again), str(other))
    lines = [json.loads(line) for line in from_files.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["duplicate", "created"]
    assert lines[0]["ticket"] == first["ticket"]


def test_ingest_reads_an_mbox(tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'var' / 'h.db'}")
    assert subprocess.run([sys.executable, "-m", "helpdesk", "migrate"], env=env).returncode == 0
    box = tmp_path / "support.mbox"
    box.write_bytes(
        b"".join(
            b"From sender@example.no Fri Nov 20 09:30:00 2026\n"
            + make_mail(subject=f"Sak {i}")
            + b"\n"
            for i in range(3)
        )
    )
    result = _cli(env, "--mbox", str(box))
    assert result.returncode == 0, result.stderr
    assert [json.loads(x)["status"] for x in result.stdout.splitlines()] == ["created"] * 3


def test_ingest_exits_75_when_the_database_is_unavailable(tmp_path: Path) -> None:
    # Nothing listens on port 9 (discard): the MTA must be told to retry, not to bounce.
    env = _env(tmp_path, "postgresql+asyncpg://postgres@127.0.0.1:9/helpdesk")
    env["HELPDESK_SECRET_KEY"] = "s" * 40
    result = _cli(env, stdin=make_mail())
    assert result.returncode == 75
    assert b"try again later" in result.stderr
    assert b"Traceback" not in result.stderr
