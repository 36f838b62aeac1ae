"""File storage on disk: content-addressed, written atomically and durably."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from helpdesk.adapters.storage import LocalFileStorage


def test_a_stored_file_reads_back_under_its_content_address(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path / "files")

    stored = storage.put("raw", b"From: kari@example.no\r\n\r\nHei\r\n")
    again = storage.put("raw", b"From: kari@example.no\r\n\r\nHei\r\n")

    assert stored == again and stored.path.startswith(f"raw/{stored.sha256[:2]}/")
    assert storage.read(stored.path) == b"From: kari@example.no\r\n\r\nHei\r\n"
    assert not [p for p in (tmp_path / "files").rglob(".incoming-*")]  # no temporary left
    with pytest.raises(ValueError):
        storage.read("../../etc/passwd")


def test_the_new_name_and_new_directories_are_fsynced_before_put_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the directory fsync a power cut could keep the database row and lose the
    file's name; the calls are recorded by the inode they were made on."""
    synced: list[tuple[int, bool]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        info = os.fstat(fd)
        synced.append((info.st_ino, stat.S_ISDIR(info.st_mode)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    storage = LocalFileStorage(tmp_path / "files")

    stored = storage.put("attachments", b"%PDF-1.7 kursbevis")

    target = tmp_path / "files" / stored.path
    inode = {path: path.stat().st_ino for path in (target, *target.parents)}
    assert (inode[target], False) in synced  # the content
    assert (inode[target.parent], True) in synced  # its name in the directory
    # …and each directory made for it, in its parent.
    assert (inode[tmp_path / "files" / "attachments"], True) in synced
    assert (inode[tmp_path], True) in synced
