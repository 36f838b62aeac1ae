"""`helpdesk ingest [FILE…] [--mbox]`: the MTA pipe and bulk import (DESIGN §5)."""

from __future__ import annotations

import json
import mailbox
import sys
from collections.abc import Iterator
from pathlib import Path

from helpdesk.bootstrap import build_runtime
from helpdesk.config import Settings
from helpdesk.inbound.bulk import concurrency_for, ingest_many
from helpdesk.inbound.outcome import IngestUnavailable

EX_TEMPFAIL = 75


def iter_messages(paths: list[str], as_mbox: bool) -> Iterator[tuple[bytes, str]]:
    """(raw bytes, source) for every message: files, mbox files, or one from stdin."""
    if not paths:
        if as_mbox:
            raise SystemExit("helpdesk ingest: --mbox needs a file")
        yield sys.stdin.buffer.read(), "pipe"
        return
    for path in paths:
        if as_mbox:
            box = mailbox.mbox(path, create=False)
            for key in box.iterkeys():
                yield box.get_bytes(key), f"mbox:{Path(path).name}"
        else:
            yield Path(path).read_bytes(), f"file:{Path(path).name}"


async def run_ingest(settings: Settings, paths: list[str], as_mbox: bool) -> int:
    """Ingest every message, one JSON line each; EX_TEMPFAIL when our side is unavailable."""
    runtime = build_runtime(settings)
    progress = _Progress(len(paths), as_mbox)
    messages = iter_messages(paths, as_mbox)
    try:
        async for result in ingest_many(runtime, messages, concurrency=concurrency_for(runtime)):
            print(json.dumps(result.as_json(), ensure_ascii=False), flush=True)
            progress.step()
    except IngestUnavailable as exc:
        print(f"helpdesk ingest: {exc}; try again later", file=sys.stderr)
        return EX_TEMPFAIL
    except OSError as exc:
        print(f"helpdesk ingest: cannot read input: {exc.strerror or exc}", file=sys.stderr)
        return EX_TEMPFAIL if not paths else 66  # EX_NOINPUT for a missing file
    finally:
        progress.done()
        await runtime.close()
    return 0


class _Progress:
    """A one-line counter on stderr, only for a person watching many messages go in."""

    def __init__(self, files: int, as_mbox: bool) -> None:
        self.enabled = sys.stderr.isatty() and (as_mbox or files > 20)
        self.count = 0

    def step(self) -> None:
        self.count += 1
        if self.enabled and self.count % 10 == 0:
            print(f"\ringested {self.count} messages", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print(f"\ringested {self.count} messages", file=sys.stderr)
