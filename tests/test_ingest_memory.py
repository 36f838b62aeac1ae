"""A 25 MB message is ingested within a bounded amount of memory (issue: ~300 MB RSS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mail_factory import make_mail

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from sqlmodel import SQLModel
    import helpdesk.models
    from helpdesk.bootstrap import build_runtime
    from helpdesk.config import Settings
    from helpdesk.inbound.pipeline import ingest_raw

    def high_water_kb():
        # VmHWM is this process's own peak RSS; ru_maxrss would include the forking parent's.
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    async def main():
        root = Path(sys.argv[1])
        settings = Settings(database_url=f"sqlite+aiosqlite:///{root / 'h.db'}",
                            data_dir=root / "var", secret_key="m" * 32)
        runtime = build_runtime(settings)
        async with runtime.engine.begin() as connection:
            await connection.run_sync(SQLModel.metadata.create_all)
        baseline = high_water_kb()
        raw = Path(sys.argv[2]).read_bytes()
        result = await ingest_raw(runtime, raw, "file")
        peak = high_water_kb()
        await runtime.close()
        print(json.dumps({"status": result.status, "baseline_kb": baseline, "peak_kb": peak}))

    asyncio.run(main())
    """
)


def test_a_24_mb_message_with_attachments_stays_under_300_mb_rss(tmp_path: Path) -> None:
    chunk = os.urandom(6 * 1024 * 1024)  # incompressible, like real PDFs and photos
    raw = make_mail(
        attachments=[(f"vedlegg-{i}.pdf", "application/pdf", chunk, None) for i in range(3)]
    )
    assert 23 * 1024 * 1024 < len(raw) < 25 * 1024 * 1024  # base64 grows it by a third
    mail = tmp_path / "big.eml"
    mail.write_bytes(raw)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(mail)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "created"
    assert report["peak_kb"] < 300 * 1024, report
