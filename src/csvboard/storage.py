"""Stored copies of ingested files, content-addressed, so a re-run reads the very same bytes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredFile:
    file_name: str
    size_bytes: int
    sha256: str
    stored_path: Path


def safe_display_name(name: str) -> str:
    """The client's file name is only ever shown, never used as a path."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload.csv"
    return "".join(ch for ch in base if ch.isprintable())[:255]


def store_stream(data_dir: Path, stream: BinaryIO, file_name: str) -> StoredFile:
    """Copy a stream into the data directory while hashing it, chunk by chunk."""
    files = data_dir / "files"
    files.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=files, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        # files/<sha256>/<name>: the bytes are addressed by content, and error messages that
        # name the file (decode, header) show the name the user knows.
        display = safe_display_name(file_name)
        final = files / digest.hexdigest() / (display.lstrip(".") or "upload.csv")
        # Always replaced (the same bytes) and touched, even when a copy exists: a prune that
        # began before now leaves a copy touched since alone (csvboard.runs.retention), since
        # the run this upload is for has not committed yet to say it needs it.
        final.parent.mkdir(exist_ok=True)
        os.replace(tmp_name, final)
        os.utime(final)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return StoredFile(display, size, digest.hexdigest(), final.resolve())


def store_file(data_dir: Path, path: Path) -> StoredFile:
    with path.open("rb") as stream:
        return store_stream(data_dir, stream, path.name)
