"""Encoding detection for ERP CSV exports.

ERP exports arrive as UTF-8 (with or without a BOM) or as Windows Japanese (CP932). We decide
by *decoding the whole file strictly* rather than guessing from a sample: a sample can look
like UTF-8 and then hit a CP932 byte a million lines later, failing the run halfway through.
Files can be 1 GB, so detection streams fixed-size chunks through an incremental decoder and
keeps nothing but a line counter.

The CP932 codec is used, never ``shift_jis``: Python's ``shift_jis`` is JIS X 0208 only and
lacks the NEC/IBM extensions every Windows export uses (①, ㈱, 髙, ...).
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import TextIO

from csvboard.dashboards.columns import Encoding
from csvboard.ingest.errors import RunError

UTF8_BOM = codecs.BOM_UTF8
CHUNK_SIZE = 1 << 20  # 1 MiB: large enough to be fast, small enough to never matter


class _DecodeFailure:
    """Where a strict decode of the file failed (absolute byte offset, line, bytes)."""

    __slots__ = ("bad_bytes", "line", "offset", "reason")

    def __init__(self, offset: int, line: int, bad_bytes: bytes, reason: str) -> None:
        self.offset = offset
        self.line = line
        self.bad_bytes = bad_bytes
        self.reason = reason

    def describe(self, what: str) -> str:
        """``line N: bytes 0x.. 0x.. are <what> (byte offset K)``."""
        shown = " ".join(f"0x{b:02X}" for b in self.bad_bytes)
        noun, verb = ("byte", "is") if len(self.bad_bytes) == 1 else ("bytes", "are")
        return f"line {self.line}: {noun} {shown} {verb} {what} (byte offset {self.offset})"


def _line_breaks(data: bytes, after_cr: bool) -> int:
    """Line breaks in ``data`` as the csv reader counts them: ``\\r\\n``, ``\\n`` or a lone ``\\r``.

    ``after_cr``: the previous chunk ended with ``\\r`` (so a leading ``\\n`` ends no new line).
    """
    count = data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
    if after_cr and data[:1] == b"\n":
        count -= 1
    return count


def _scan(path: Path, codec: str, skip: int = 0) -> _DecodeFailure | None:
    """Strictly decode ``path`` (from byte ``skip``) in chunks; return the first failure.

    Line breaks are counted on raw bytes, which is exact for both codecs: in UTF-8 and in
    CP932 the bytes 0x0A and 0x0D only ever encode U+000A and U+000D (CP932 trail bytes start
    at 0x40), and a decoder never holds them back as part of a pending partial character.
    """
    decoder = codecs.getincrementaldecoder(codec)("strict")
    offset = skip  # absolute offset of the next chunk's first byte
    breaks = 0  # line breaks in all bytes before ``offset``
    after_cr = False
    with path.open("rb") as fh:
        if skip:
            fh.seek(skip)
        while True:
            chunk = fh.read(CHUNK_SIZE)
            final = not chunk
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's pending bytes followed by this chunk.
                data = exc.object
                start = exc.start
                # Show the offending sequence and, for context, at least two bytes.
                shown = bytes(data[start : max(exc.end, start + 2)])
                if len(shown) < 2:  # the chunk ended right there: peek at the next byte
                    shown += fh.read(2 - len(shown))
                # The pending bytes at the front of ``data`` are never CR/LF (see above).
                line = breaks + _line_breaks(bytes(data[pending:start]), after_cr) + 1
                return _DecodeFailure(offset - pending + start, line, shown, exc.reason)
            if final:
                return None
            offset += len(chunk)
            breaks += _line_breaks(chunk, after_cr)
            after_cr = chunk[-1:] == b"\r"


def _starts_with_bom(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(UTF8_BOM)) == UTF8_BOM


def detect_encoding(path: Path, setting: Encoding) -> str:
    """Return the Python codec to read ``path`` with: ``utf-8-sig``, ``utf-8`` or ``cp932``.

    ``auto``: a UTF-8 BOM means UTF-8 (the rest must then be valid UTF-8); otherwise strict
    UTF-8 over the whole file, else strict CP932. A forced setting is verified the same way
    (``utf-8`` still returns ``utf-8-sig`` when the file has a BOM, so the BOM never ends up
    in the first header cell). Anything that does not decode raises
    ``RunError("ENCODING_UNSUPPORTED", ...)`` naming the line and the offending bytes.
    An empty file is ``utf-8``.
    """
    name = path.name
    if path.stat().st_size == 0:
        return "utf-8"
    has_bom = _starts_with_bom(path)

    if setting == "cp932":
        failure = _scan(path, "cp932")
        if failure is not None:
            raise RunError(
                "ENCODING_UNSUPPORTED",
                f"{name}: "
                + failure.describe("not valid CP932; the dashboard's encoding is set to cp932"),
            )
        return "cp932"

    if has_bom or setting == "utf-8":
        codec = "utf-8-sig" if has_bom else "utf-8"
        failure = _scan(path, "utf-8", skip=len(UTF8_BOM) if has_bom else 0)
        if failure is not None:
            why = (
                "the file starts with a UTF-8 byte order mark"
                if has_bom
                else "the dashboard's encoding is set to utf-8"
            )
            raise RunError(
                "ENCODING_UNSUPPORTED",
                f"{name}: " + failure.describe(f"not valid UTF-8; {why}"),
            )
        return codec

    utf8_failure = _scan(path, "utf-8")
    if utf8_failure is None:
        return "utf-8"
    cp932_failure = _scan(path, "cp932")
    if cp932_failure is None:
        return "cp932"
    # Report the failure that got further into the file: the file is most likely in that
    # encoding and damaged there (e.g. one corrupt byte in an otherwise UTF-8 file).
    worst = utf8_failure if utf8_failure.offset >= cp932_failure.offset else cp932_failure
    raise RunError(
        "ENCODING_UNSUPPORTED",
        f"{name}: " + worst.describe("neither UTF-8 nor CP932"),
    )


def open_text(path: Path, codec: str) -> TextIO:
    """Open ``path`` for the csv module: ``newline=""`` (so quoted newlines survive), strict."""
    return path.open("r", encoding=codec, newline="", errors="strict")
