"""Runs `MailFetcher.run_once` and SIGKILLs itself right after the first ingest commit.

That is the worst moment for a crash: the message is committed but not yet marked on the
server. Used by test_imap_fetch.py:

    python -m tests.peers.killed_fetcher sha256 IMAP_SETTINGS_JSON DATABASE_URL INGEST_FILE
    python -m tests.peers.killed_fetcher pipeline IMAP_SETTINGS_JSON RUNTIME_SETTINGS_JSON

`sha256` ingests with `Sha256Ingest` into a SQLite file; `pipeline` with the real
`ingest_raw` on a runtime built from the given settings (database_url, data_dir, …).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

import msgspec

from helpdesk.adapters.imap import AioImapMailbox
from helpdesk.bootstrap import build_runtime
from helpdesk.config import ImapSettings, Settings
from helpdesk.db import create_engine, create_session_factory
from helpdesk.inbound.fetcher import MailFetcher
from tests.peers.ingest import Sha256Ingest


def die() -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("still alive after SIGKILL")


async def with_sha256(settings: ImapSettings, database_url: str, ingest_file: str) -> None:
    async def after_commit(raw: bytes, source: str) -> None:
        die()

    sessions = create_session_factory(create_engine(database_url))
    ingest = Sha256Ingest(Path(ingest_file), after_commit=after_commit)
    await MailFetcher(settings, sessions, ingest, AioImapMailbox).run_once()


async def with_pipeline(settings: ImapSettings, runtime_settings: str) -> None:
    from helpdesk.inbound.pipeline import ingest_raw

    fields = json.loads(runtime_settings)
    runtime = build_runtime(Settings(**{**fields, "data_dir": Path(fields["data_dir"])}))

    async def ingest(raw: bytes, source: str) -> object:
        await ingest_raw(runtime, raw, source)
        die()

    await MailFetcher(settings, runtime.sessions, ingest, AioImapMailbox).run_once()


if __name__ == "__main__":
    mode, imap_json, *rest = sys.argv[1:]
    imap = msgspec.json.decode(imap_json, type=ImapSettings)
    asyncio.run(with_sha256(imap, *rest) if mode == "sha256" else with_pipeline(imap, *rest))
    sys.exit("the fetcher was meant to be killed after the first commit")
