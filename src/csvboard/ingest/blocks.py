"""Read a CSV file in blocks of whole lines; Arrow parses the lines it can judge exactly.

The exact parser (``parse.iter_records``: Python's csv module in strict mode, resynchronised
by hand after an error) is the contract: physical line numbers, ROW_SHAPE for malformed
quoting, FIELD_TOO_LARGE without holding the field, blank records skipped. It is also one
interpreter step per line. This module hands Arrow's C++ CSV parser every line whose
meaning is beyond doubt, and the exact parser everything else:

* A block is up to ``rows`` physical lines, cut after a ``\\n`` (in UTF-8 and CP932 the byte
  0x0A is only ever a line feed), decoded with the file's codec and, for CP932, re-encoded
  as UTF-8 — both in C.
* A line is *clean* when it is one complete record of exactly the header's width: with no
  quote in the block, when it has ``width - 1`` commas; otherwise when it matches a regular
  expression of the strict grammar (every field either unquoted without quotes, or quoted
  with ``""`` inside and closed before the next comma). A clean line cannot start, end or
  be part of a quoted newline, so Arrow and the csv module read it alike, as one record of
  the line it stands on. Lines with a NUL, lone carriage returns (line breaks of their own
  for the csv module) or over ``FAST_LINE_BYTES`` never count as clean.
* Every other line is read exactly: when it has no quote, on its own (it is one record:
  a ragged row, a blank line, a NUL); when a line with a quote is not clean, the whole block
  goes to ``iter_records`` — extended until it ends outside quotes, so a quoted value
  crossing the block's end is read whole.
* A line longer than the read buffer can hold, or a header that is not one plain line,
  sends the rest of the file to ``iter_records`` on a stream (memory stays bounded).

So the records, their lines and the parser errors are those of ``iter_records`` over the
file; ``tests/ingest/test_blocks.py`` compares the two on the malformed corpus and on
generated files.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from csvboard.ingest.errors import RunError
from csvboard.ingest.parse import Record, RecordError, iter_records, line_ends_in_quotes

# A line longer than this is never parsed by Arrow (the exact parser owns FIELD_TOO_LARGE).
FAST_LINE_BYTES = 1 << 20
_READ_BYTES = 1 << 22
# With no line break in this many bytes, the rest of the file is read by the exact parser.
_MAX_BUFFER = 64 << 20
# Arrow's CSV reader installs a temporary handler for the signals Python handles and, when one
# arrives mid-read, cancels the read (ArrowCancelled). A worker's SIGTERM must reach the
# worker's own handler instead, which fails the run cleanly (WORKER_SHUTDOWN) between blocks;
# a block takes milliseconds, so nothing is lost by not interrupting it.
pa.lib.enable_signal_handlers(False)

_BOM = "\ufeff".encode()
# RE2 refuses counted repetitions above 1000: wider files with quotes read exactly.
_MAX_REGEX_WIDTH = 1000
_LINE_BREAK = re.compile(rb"\r\n|\n|\r")


@dataclass
class Block:
    """The records of ``first_line``.. of the file, in two parts that together are in order.

    ``table``: string columns ``c0``…, one row per clean line, ``lines`` their line numbers.
    ``records``: the other records, as ``iter_records`` yields them (blank ones left out).
    """

    first_line: int
    table: pa.Table | None = None
    lines: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    records: list[Record | RecordError] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.lines) + len(self.records)


def _plain(codec: str) -> str:
    return "utf-8" if codec == "utf-8-sig" else codec


def _is_blank(cells: list[str]) -> bool:
    """``iter_records``'s blank record: no cell holds anything but white space."""
    return not cells or (not cells[0].strip() and not "".join(cells).strip())


def _clean_line_pattern(width: int) -> str:
    value = r'(?:"(?:[^"\r\n\x00]|"")*"|[^,"\r\n\x00]*)'
    return rf"^{value}(?:,{value}){{{width - 1}}}\r?$" if width > 1 else rf"^{value}\r?$"


class BlockReader:
    """The header, then blocks of up to ``rows`` lines, of one file (see the module doc)."""

    def __init__(self, path: Path, codec: str, max_field_chars: int, rows: int) -> None:
        self.path = path
        self.codec = codec
        self.plain = _plain(codec)
        self.max_field_chars = max_field_chars
        self.rows = rows
        self.width = 0
        self._pattern = ""

    def read(self) -> Iterator[Record | RecordError | Block]:
        """The header record (or its error) first, then the blocks."""
        skip = 3 if self.codec == "utf-8-sig" else 0
        with self.path.open("rb") as fh:
            fh.seek(skip)
            head = fh.read(_READ_BYTES)
            eof = len(head) < _READ_BYTES
        found = self._header(head, eof)
        if found is None:  # not one plain line within the first buffer: read it all exactly
            yield from self._exact_rest(skip, 1, header=True)
            return
        header, offset, line = found
        yield header
        if isinstance(header, RecordError):
            return
        self.width = len(header.cells)
        self._pattern = _clean_line_pattern(self.width)
        yield from self._blocks(skip + offset, line)

    # -- the header ----------------------------------------------------------------------
    def _header(self, head: bytes, eof: bool) -> tuple[Record | RecordError, int, int] | None:
        """The first record, the byte offset after it and the next line's number."""
        cut = len(head) if eof else head.rfind(b"\n") + 1
        if cut <= 0:
            return None
        try:
            text = head[:cut].decode(self.plain)
        except UnicodeDecodeError:
            return None  # the exact reader reports it
        first = next(iter_records(io.StringIO(text, newline=""), self.max_field_chars), None)
        if first is None:  # no record in the first buffer (or none at all)
            return None
        if isinstance(first, RecordError):
            return first, cut, 0
        breaks = sum(c.count("\n") + c.count("\r") - c.count("\r\n") for c in first.cells)
        end_line = first.line + breaks  # the header's last physical line
        for seen, match in enumerate(_LINE_BREAK.finditer(head, 0, cut), start=1):
            if seen == end_line:
                if match.group() == b"\r" and match.end() == cut and not eof:
                    return None  # a CR that may be half of a CRLF: let the exact reader judge
                return first, match.end(), end_line + 1
        return (first, cut, end_line + 1) if eof else None

    # -- blocks --------------------------------------------------------------------------
    def _blocks(self, offset: int, line: int) -> Iterator[Record | RecordError | Block]:
        with self.path.open("rb") as fh:
            fh.seek(offset)
            buf = b""
            eof = False
            while True:
                while not eof and buf.count(b"\n") < self.rows and len(buf) <= _MAX_BUFFER:
                    more = fh.read(_READ_BYTES)
                    eof = not more
                    buf += more
                if not buf:
                    return
                cut = self._cut(buf, eof)
                if cut is None:  # a giant line: the rest exactly, from a stream
                    yield from self._exact_rest(offset, line)
                    return
                raw, rest = buf[:cut], buf[cut:]
                block = self._fast(raw, line)
                if block is None:
                    # Read exactly, extended until it ends outside quotes (or the file ends).
                    # Each piece added ends a line, so the quote state carries over and only
                    # the new bytes are scanned.
                    in_quotes = self._ends_in_quotes(raw, False)
                    while in_quotes:
                        last = rest.rfind(b"\n")
                        if last >= 0:
                            piece, rest = rest[: last + 1], rest[last + 1 :]
                            raw += piece
                            in_quotes = self._ends_in_quotes(piece, in_quotes)
                        elif eof:
                            raw, rest = raw + rest, b""
                            break
                        elif len(raw) + len(rest) > _MAX_BUFFER:
                            yield from self._exact_rest(offset, line)
                            return
                        else:
                            more = fh.read(_READ_BYTES)
                            eof = not more
                            rest += more
                    block = self._exact_block(raw, line)
                yield block
                offset += len(raw)
                line += _breaks(raw)
                buf = rest
                if eof and not buf:
                    return

    def _cut(self, buf: bytes, eof: bool) -> int | None:
        """Where this block ends: after its ``rows``-th line break, or the last one."""
        if buf.count(b"\n") > self.rows:
            ends = np.flatnonzero(np.frombuffer(buf, np.uint8) == 10)
            return int(ends[self.rows - 1]) + 1
        if eof:
            return len(buf)
        last = buf.rfind(b"\n")
        return last + 1 if last >= 0 else None

    def _decode(self, raw: bytes, first_line: int) -> str:
        try:
            return raw.decode(self.plain)
        except UnicodeDecodeError as exc:  # the file changed since detect_encoding
            raise RunError(
                "ENCODING_UNSUPPORTED",
                f"{self.path.name}: cannot be decoded after line "
                f"{first_line + _breaks(raw[: exc.start])} ({exc.reason})",
            ) from exc

    def _fast(self, raw: bytes, first_line: int) -> Block | None:
        """Arrow for the clean lines, ``None`` when the block must be read exactly."""
        text = self._decode(raw, first_line)
        data = raw if self.plain == "utf-8" else text.encode()
        if data.count(b"\r") != data.count(b"\r\n"):
            return None  # a lone CR is a line break of its own
        lines = data.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        if not lines:
            return Block(first_line)
        array = pa.array(lines, pa.binary())
        lengths = pc.binary_length(array).to_numpy(zero_copy_only=False)
        if int(lengths.max()) > FAST_LINE_BYTES:
            return None
        quoted = b'"' in data
        if not quoted and b"\x00" not in data:
            commas = pc.count_substring(array, ",").to_numpy(zero_copy_only=False)
            clean = commas == self.width - 1
        elif self.width > _MAX_REGEX_WIDTH:
            return None
        else:
            clean = pc.match_substring_regex(array.cast(pa.string()), self._pattern)
            clean = clean.to_numpy(zero_copy_only=False)
        empty = lengths == 0
        for i in np.flatnonzero(lengths == 1).tolist():
            empty[i] = lines[i] == b"\r"
        clean &= ~empty
        # Arrow drops a byte order mark at the start of what it reads, the exact parser keeps
        # it in the cell: a line that starts with one (a file concatenated from exports) is
        # never given to Arrow.
        clean &= ~pc.starts_with(array, _BOM).to_numpy(zero_copy_only=False)
        block = Block(first_line)
        for i in np.flatnonzero(~clean & ~empty).tolist():
            line = lines[i]
            if b'"' in line:
                return None  # may be part of a quoted newline: the block is read exactly
            cells = line.decode().removesuffix("\r").split(",")
            if not _is_blank(cells):
                block.records.append(Record(first_line + i, cells))
        index = np.flatnonzero(clean)
        if len(index) == 0:
            return block
        payload = data if len(index) == len(lines) else b"\n".join(lines[i] for i in index)
        table = _parse(payload, self.width)
        if table.num_rows != len(index):  # cannot happen for clean lines; never guess
            return None
        lines_of_rows = index.astype(np.int64) + first_line
        blank = _blank_rows(table)
        if blank is not None:
            table, lines_of_rows = table.filter(~blank), lines_of_rows[~blank]
        block.table, block.lines = table, lines_of_rows
        return block

    def _exact_block(self, raw: bytes, first_line: int) -> Block:
        text = self._decode(raw, first_line)
        stream = io.StringIO(text, newline="")
        return Block(
            first_line, records=list(iter_records(stream, self.max_field_chars, first_line))
        )

    def _ends_in_quotes(self, raw: bytes, in_quotes: bool) -> bool:
        """Whether ``raw`` (whole lines) ends inside a quoted value, starting ``in_quotes``."""
        for line in io.StringIO(self._decode(raw, 0), newline=""):
            in_quotes = line_ends_in_quotes(line, in_quotes)
        return in_quotes

    def _exact_rest(
        self, offset: int, line: int, *, header: bool = False
    ) -> Iterator[Record | RecordError | Block]:
        """From byte ``offset`` (line ``line``) to the end, by ``iter_records`` on a stream."""
        with self.path.open("rb") as raw:
            raw.seek(offset)
            codec = self.codec if header else self.plain
            stream = io.TextIOWrapper(raw, encoding=codec, errors="strict", newline="")
            records = iter_records(stream, self.max_field_chars, line)
            if header:
                first = next(records, None)
                if first is None:
                    return
                yield first
                if isinstance(first, RecordError):
                    return
                self.width = len(first.cells)
            block = Block(line)
            for record in records:
                block.records.append(record)
                if len(block.records) >= self.rows:
                    yield block
                    block = Block(record.line + 1)
            if block.records:
                yield block


def _breaks(raw: bytes) -> int:
    """Physical line breaks in ``raw`` as the csv module counts them."""
    return raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n")


def block_column(table: pa.Table, index: int) -> pa.Array:
    """Column ``index`` as one array (the table is combined: one chunk a column)."""
    column = table.column(index)
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _blank_rows(table: pa.Table) -> np.ndarray | None:
    """Rows whose cells are all white space (as ``str.strip`` sees it), or ``None``."""
    first = block_column(table, 0).dictionary_encode()
    blank_values = [not v.strip() for v in first.dictionary.to_pylist()]
    if not any(blank_values):
        return None
    candidates = np.asarray(blank_values, dtype=bool)[first.indices.to_numpy()]
    for i in np.flatnonzero(candidates).tolist():
        if not _is_blank([table.column(j)[i].as_py() for j in range(table.num_columns)]):
            candidates[i] = False
    return candidates if candidates.any() else None


def _parse(payload: bytes, width: int) -> pa.Table:
    names = [f"c{i}" for i in range(width)]
    table = pa_csv.read_csv(
        io.BytesIO(payload),
        read_options=pa_csv.ReadOptions(
            column_names=names, block_size=max(len(payload) + 1, 1 << 16), use_threads=False
        ),
        parse_options=pa_csv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table.combine_chunks()
