"""Runs `MailFetcher.run_once` and SIGKILLs itself right after the first ingest commit.

That is the worst moment for a crash: the message is committed but not yet marked on the
server. Arguments: DATABASE_URL INGEST_FILE IMAP_SETTINGS_JSON (used by test_imap_fetch.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import msgspec

from helpdesk.adapters.imap import AioImapMailbox
from helpdesk.config import ImapSettings
from helpdesk.db import create_engine, create_session_factory
from helpdesk.inbound.fetcher import MailFetcher
from tests.peers.ingest import Sha256Ingest


async def die(raw: bytes, source: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(database_url: str, ingest_file: str, settings_json: str) -> None:
    settings = msgspec.json.decode(settings_json, type=ImapSettings)
    engine = create_engine(database_url)
    ingest = Sha256Ingest(Path(ingest_file), after_commit=die)
    fetcher = MailFetcher(settings, create_session_factory(engine), ingest, AioImapMailbox)
    await fetcher.run_once()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
    sys.exit("the fetcher was meant to be killed after the first commit")
