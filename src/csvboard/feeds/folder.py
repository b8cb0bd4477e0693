"""The folder source: CSV files dropped into a watched directory (docs/contract.md §4).

A folder feed's files are taken by the scheduler's leader on its ticks
(:class:`csvboard.feeds.folder_runs.FolderSource`) and by a start request naming the feed
(:class:`csvboard.feeds.folder_runs.RequestClaims`); both take a file through
:func:`claim` here, so a file is taken once whoever asks and however many processes ask.

**Life cycle** (all inside the watched folder, so every rename stays on one file system and is
atomic)::

    <folder>/report.csv
      -> .csvboard/processing/<claim-uuid>__report.csv   claimed (only one process wins)
      -> .csvboard/processing/<run-id>__report.csv       renamed before the run commits
      -> .csvboard/archive/<run-id>__report.csv          run succeeded or partial
      -> .csvboard/failed/<run-id>__report.csv (+ .reason.txt)   run failed or cancelled

Only settled, regular, non-dot ``*.csv`` files are taken (:func:`waiting_files`). Of two
processes renaming the same file exactly one succeeds, the other gets ``FileNotFoundError``.

Because the rename to the run id happens *before* the run's transaction commits (and is undone
if the commit fails), a processing file whose prefix names no run is one whose run never
committed: after the scheduler's ``orphan_seconds`` (the process that claimed it crashed) it is
put back into the folder to be claimed again, so a crash loses no file and duplicates none.

This module is the file system half; ``feeds/folder_runs.py`` ties it to the ledger.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

#: The bookkeeping directory inside a watched folder (a dot-dir: never scanned).
STATE_DIR = ".csvboard"
#: Between the claim's (or the run's) id and the file's name as dropped.
CLAIM_SEPARATOR = "__"


@dataclass(frozen=True)
class FolderLayout:
    """The watched folder and the directories of the life cycle inside it."""

    folder: Path

    @property
    def processing(self) -> Path:
        return self.folder / STATE_DIR / "processing"

    @property
    def archive(self) -> Path:
        return self.folder / STATE_DIR / "archive"

    @property
    def failed(self) -> Path:
        return self.folder / STATE_DIR / "failed"

    def ensure(self) -> None:
        for path in (self.processing, self.archive, self.failed):
            path.mkdir(parents=True, exist_ok=True)


def layout_of(location: str | None) -> FolderLayout:
    """A feed's folder, its life-cycle directories created; ``FileNotFoundError`` if missing."""
    folder = Path(location or "")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} does not exist or is not a directory")
    layout = FolderLayout(folder)
    layout.ensure()
    return layout


@dataclass(frozen=True)
class ClaimedFile:
    """A file this process won: its name as dropped, and where it lies in processing/."""

    original_name: str
    path: Path


def waiting_files(folder: Path, *, settle_seconds: float) -> list[Path]:
    """Regular ``*.csv`` files ready to take, oldest first (mtime, then name).

    Dot files are skipped (editors' and copy tools' temporaries, our own ``.csvboard``), and so
    is a file modified in the last ``settle_seconds``: it may still be being written.
    """
    now = time.time()
    found: list[tuple[float, str, Path]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.lower().endswith(".csv"):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue  # claimed or removed while we looked
            if now - mtime < settle_seconds:
                continue
            found.append((mtime, entry.name, Path(entry.path)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [path for _, _, path in found]


def claim(layout: FolderLayout, path: Path) -> ClaimedFile | None:
    """Take one file for this process, or None if another process took it first.

    ``rename`` is atomic: of any number of processes renaming the same directory entry, one
    succeeds and the others find the source gone.
    """
    dest = layout.processing / f"{uuid.uuid4()}{CLAIM_SEPARATOR}{path.name}"
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    return ClaimedFile(original_name=path.name, path=dest)


def claim_oldest(layout: FolderLayout, *, settle_seconds: float) -> ClaimedFile | None:
    """The oldest waiting file this process wins, or None when none is left to take."""
    for path in waiting_files(layout.folder, settle_seconds=settle_seconds):
        claimed = claim(layout, path)
        if claimed is not None:
            return claimed
    return None


def run_named(layout: FolderLayout, claimed: ClaimedFile, run_id: uuid.UUID) -> Path:
    """Rename a claimed file after its run (before the run commits: see the docstring)."""
    final = layout.processing / f"{run_id}{CLAIM_SEPARATOR}{claimed.original_name}"
    os.rename(claimed.path, final)
    return final


def undo_run_name(final: Path | None, claimed: ClaimedFile) -> None:
    """Undo :func:`run_named` when the run did not commit (``final`` None: nothing to undo)."""
    if final is not None:
        with contextlib.suppress(FileNotFoundError):
            os.rename(final, claimed.path)


def split_processing_name(name: str) -> tuple[uuid.UUID | None, str]:
    """``(id, name as dropped)`` of a processing file; the id is a run's or a claim's."""
    prefix, sep, original = name.partition(CLAIM_SEPARATOR)
    if not sep:
        return None, name
    try:
        return uuid.UUID(prefix), original
    except ValueError:
        return None, name


def put_back(layout: FolderLayout, path: Path, original_name: str) -> Path | None:
    """Return a processing file to the folder without overwriting a newer drop of that name."""
    target = layout.folder / original_name
    if target.exists():
        stem, dot, suffix = original_name.rpartition(".")
        target = layout.folder / f"{stem or suffix}.recovered-{uuid.uuid4().hex[:8]}{dot}{suffix}"
    try:
        os.link(path, target)  # fails rather than replace an existing file
        os.unlink(path)
    except FileExistsError:
        return None
    except FileNotFoundError:
        return None  # someone else moved it
    except OSError:
        # File systems without hard links (some network shares): a plain rename.
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
    return target


def write_reason(path: Path, reason: str) -> None:
    """Write ``<path>.reason.txt`` atomically (a person opens it next to the failed file)."""
    target = path.with_name(path.name + ".reason.txt")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".reason-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(reason.rstrip("\n") + "\n")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def move(path: Path, directory: Path) -> Path | None:
    """Move a file into ``directory``; None if another process settled it first."""
    dest = directory / path.name
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return None
    return dest


def set_aside(layout: FolderLayout, path: Path, reason: str) -> None:
    """Move a file a person must look at into failed/, with its reason file."""
    dest = move(path, layout.failed)
    if dest is not None:
        write_reason(dest, reason)


def claim_age(path: Path) -> float | None:
    """Seconds since a processing file was claimed (None: it is gone).

    ``rename`` updates the inode's change time (the mtime is the drop's), so this is the claim's
    age, not the file's.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return time.time() - max(st.st_ctime, st.st_mtime)


__all__ = [
    "CLAIM_SEPARATOR",
    "STATE_DIR",
    "ClaimedFile",
    "FolderLayout",
    "claim",
    "claim_age",
    "claim_oldest",
    "layout_of",
    "move",
    "put_back",
    "run_named",
    "set_aside",
    "split_processing_name",
    "undo_run_name",
    "waiting_files",
    "write_reason",
]
