"""File storage for raw mail, attachments and exports, content-addressed by SHA-256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    path: str  # relative to the storage root, e.g. "raw/ab/cd/abcd…"
    size: int


class FileStorage(Protocol):
    def put(self, area: str, content: bytes) -> StoredFile: ...
    def read(self, path: str) -> bytes: ...
    def delete(self, path: str) -> None: ...
    def exists(self, path: str) -> bool: ...


def _relative_path(area: str, digest: str) -> str:
    return f"{area}/{digest[:2]}/{digest[2:4]}/{digest}"


def content_address(area: str, content: bytes) -> StoredFile:
    """Where `put` stores this content, and its digest and size (nothing is written)."""
    digest = hashlib.sha256(content).hexdigest()
    return StoredFile(sha256=digest, path=_relative_path(area, digest), size=len(content))


def write_atomically(target: Path, content: bytes) -> None:
    """Write via a temporary file, fsync, rename: readers never see a partial file.

    The directory is fsynced after the rename too: until then the new name may exist only
    in memory, and a power cut after the database committed a row pointing at the file
    could leave the row without its file (a raw message or attachment lost).
    """
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


def fsync_directory(directory: Path) -> None:
    """Make the entries of `directory` (new names, renames) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_directories(directory: Path) -> None:
    """`mkdir -p` whose new directories survive a crash (each one's parent fsynced)."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    for made in reversed(missing):
        fsync_directory(made.parent)


class LocalFileStorage:
    """Files under a directory; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made_dirs: set[Path] = set()

    def put(self, area: str, content: bytes) -> StoredFile:
        stored = content_address(area, content)
        target = self.root / stored.path
        if not target.exists():
            if target.parent not in self._made_dirs:
                make_directories(target.parent)
                self._made_dirs.add(target.parent)
            write_atomically(target, content)
        return stored

    def read(self, path: str) -> bytes:
        return self._resolve(path).read_bytes()

    def delete(self, path: str) -> None:
        self._resolve(path).unlink(missing_ok=True)

    def exists(self, path: str) -> bool:
        return self._resolve(path).exists()

    def _resolve(self, path: str) -> Path:
        resolved = (self.root / path).resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise ValueError("path escapes the storage root")
        return resolved


class MemoryFileStorage:
    """In-memory twin for unit tests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, area: str, content: bytes) -> StoredFile:
        stored = content_address(area, content)
        self.files[stored.path] = content
        return stored

    def read(self, path: str) -> bytes:
        return self.files[path]

    def delete(self, path: str) -> None:
        self.files.pop(path, None)

    def exists(self, path: str) -> bool:
        return path in self.files
