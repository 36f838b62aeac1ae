"""Stands in for `helpdesk.inbound.pipeline` when the CLI runs in a test's subprocess.

`python -m tests.peers.stub_pipeline fetch-mail …` installs this module under that name,
then runs `helpdesk`; `ingest_raw` commits to the `Sha256Ingest` file named by
HELPDESK_TEST_INGEST_FILE.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.peers.ingest import Sha256Ingest


async def ingest_raw(runtime: object, raw: bytes, source: str) -> str:
    return await Sha256Ingest(Path(os.environ["HELPDESK_TEST_INGEST_FILE"]))(raw, source)


if __name__ == "__main__":
    sys.modules["helpdesk.inbound.pipeline"] = sys.modules[__name__]
    from helpdesk.cli import main

    sys.exit(main(sys.argv[1:]))
