"""Streaming CSV parsing and header mapping.

We use the stdlib ``csv`` reader (C implementation: fast, handles quoted newlines and
doubled quotes) in *strict* mode, driven line by line so memory stays bounded by the largest
record. Two CPython behaviours shape the code below:

* With ``strict=False`` (the default) the reader silently accepts an unterminated quote at end
  of file (the rest of the file becomes one value) and ``"ab"c`` (a quote closed mid-value,
  typical of an ERP that does not escape inch marks). Strict mode turns both into
  ``csv.Error``, which we report as a ``ROW_SHAPE`` record error instead of mangling data.
* After *any* ``csv.Error`` (including "field larger than field limit") the reader drops the
  rest of the physical line it was reading and starts the next record on the next physical
  line. That is right when the error line ends outside quotes, but when it ends *inside* a
  quoted value (a multi-line cell) the following lines would be parsed as new records. So on
  error we re-scan the failed record's lines with a tiny quote-state machine and, if needed,
  skip physical lines until the quoted value closes; the reader then resumes at a true record
  boundary and line numbers stay exact.

"Driven line by line" needs one more bound: a physical line is itself read in pieces of at
most ``max_line_chars_for`` characters. A longer line (a 1 GB file without a newline) is
reported as ``FIELD_TOO_LARGE`` and skipped piece by piece, never held whole.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from csvboard.dashboards.columns import AppearanceMapping, DashboardSchema, normalize_header
from csvboard.ingest.errors import RunError

# A field may always be this long before the parser gives up on it, whatever the columns'
# max_length: values a little over max_length get a precise LENGTH rejection (with the row's
# key) rather than a bare FIELD_TOO_LARGE; only absurd values (a runaway quote, a 5 MB blob)
# hit the parser limit, which exists to bound memory.
MIN_FIELD_LIMIT = 1 << 20

# A physical line may be this many times the field limit (at least 4 Mi characters) before
# the parser gives up on it: room for a value at the field limit beside the others and for
# very wide files (100,000 columns), not for a runaway line (with the default limits 8 Mi
# characters, at most 32 MB however wide the characters).
LINE_LIMIT_FIELDS = 8
MIN_LINE_LIMIT = 4 << 20

STATUS_KEY = "__status__"  # HeaderMap.columns key of an appearance feed's status column

_FIELD_LIMIT_PREFIX = "field larger than field limit"


@dataclass(frozen=True, slots=True)
class Record:
    """One CSV record; ``line`` is the 1-based physical line it starts on."""

    line: int
    cells: list[str]


@dataclass(frozen=True, slots=True)
class RecordError:
    """A record the parser could not read; the parser continues with the next record."""

    line: int
    code: str  # FIELD_TOO_LARGE | ROW_SHAPE
    message: str


def max_field_chars_for(schema: DashboardSchema) -> int:
    """The parser field limit to use for ``schema``: above every column's max_length."""
    return max(MIN_FIELD_LIMIT, *(c.max_length + 1 for c in schema.columns))


def max_line_chars_for(max_field_chars: int) -> int:
    return max(MIN_LINE_LIMIT, LINE_LIMIT_FIELDS * max_field_chars)


class _LineTooLong(Exception):
    """A physical line longer than the line limit (raised from inside the line feed)."""


def line_ends_in_quotes(line: str, in_quotes: bool) -> bool:
    """Does this physical line end inside a quoted value (excel dialect, lenient)?

    ``in_quotes``: whether the line starts inside a quoted value continued from the previous
    line; otherwise it starts a new record. Used only on error paths.
    """
    i = 0
    n = len(line)
    at_field_start = not in_quotes
    while i < n:
        if in_quotes:
            j = line.find('"', i)
            if j < 0:
                return True
            if j + 1 < n and line[j + 1] == '"':  # doubled quote: a literal quote
                i = j + 2
                continue
            in_quotes = False  # closing quote; anything after it joins the value
            i = j + 1
            at_field_start = False
            continue
        if at_field_start and line[i] == '"':
            in_quotes = True
            i += 1
            continue
        j = line.find(",", i)  # unquoted: only a delimiter changes state
        if j < 0:
            return False
        i = j + 1
        at_field_start = True
    return in_quotes


def _describe_csv_error(exc: csv.Error) -> str:
    text = str(exc)
    if text == "unexpected end of data":
        return "a quoted value is never closed: the file ends inside quotes"
    if text.endswith("expected after '\"'"):
        return (
            "malformed quoting: a closing quote must be followed by a comma or the end of "
            'the line (write a quote inside a quoted value as "")'
        )
    return f"malformed CSV ({text})"


def iter_records(
    stream: TextIO, max_field_chars: int, first_line: int = 1
) -> Iterator[Record | RecordError]:
    """Yield the records of ``stream`` (opened with ``newline=""``), one at a time.

    ``first_line``: the physical line number of the stream's first line (a stream that is a
    part of a file, see ``ingest/blocks.py``), so line numbers and messages name the file's lines.

    Blank records are skipped: empty lines, whitespace-only lines and rows of only empty
    cells such as ``,,,,`` (Excel leaves these after the data). A value longer than
    ``max_field_chars`` yields ``RecordError("FIELD_TOO_LARGE")``; malformed quoting yields
    ``RecordError("ROW_SHAPE")``; in both cases parsing continues with the next record.

    ``csv.field_size_limit`` is process-global: it is set here on every call, so concurrent
    parses in one process should use the same limit (``max_field_chars_for``).
    """
    csv.field_size_limit(max_field_chars)
    line_limit = max_line_chars_for(max_field_chars)
    file_name = Path(str(getattr(stream, "name", "input"))).name
    buf: list[str] = []  # physical lines of the record being read

    def lines() -> Iterator[str]:
        try:
            while physical := stream.readline(line_limit):
                if len(physical) >= line_limit and not physical.endswith(("\n", "\r")):
                    raise _LineTooLong()
                buf.append(physical)
                yield physical
        except UnicodeDecodeError as exc:  # the file changed since detect_encoding
            raise RunError(
                "ENCODING_UNSUPPORTED",
                f"{file_name}: cannot be decoded after line {consumed + len(buf)} ({exc.reason})",
            ) from exc

    source = lines()
    reader = csv.reader(source, strict=True)
    consumed = first_line - 1  # physical lines before the current record
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _LineTooLong:
            start = consumed + 1
            error_line = consumed + len(buf) + 1
            while (piece := stream.readline(line_limit)) and not piece.endswith(("\n", "\r")):
                pass  # the rest of the line, dropped piece by piece
            consumed += len(buf) + 1
            buf.clear()
            lines_span = f"line {start}" if error_line == start else f"lines {start}–{error_line}"
            yield RecordError(
                start,
                "FIELD_TOO_LARGE",
                f"line {error_line} is longer than {line_limit:,} characters; {lines_span} skipped",
            )
            # The feed ended with the exception: start a fresh reader on the next line.
            source = lines()
            reader = csv.reader(source, strict=True)
            continue
        except csv.Error as exc:
            start = consumed + 1
            error_line = consumed + len(buf)
            in_quotes = False
            for failed_line in buf:
                in_quotes = line_ends_in_quotes(failed_line, in_quotes)
            consumed += len(buf)
            buf.clear()
            # Skip the rest of a multi-line quoted value so the reader resumes at a record
            # boundary. Lines are counted and dropped, never accumulated.
            while in_quotes:
                skipped = next(source, None)
                if skipped is None:
                    break
                in_quotes = line_ends_in_quotes(skipped, in_quotes)
                consumed += len(buf)
                buf.clear()
            skipped_span = (
                f"line {start} was skipped"
                if consumed == start
                else f"lines {start}–{consumed} were skipped"
            )
            where = "" if error_line == start else f" (on line {error_line})"
            if str(exc).startswith(_FIELD_LIMIT_PREFIX):
                yield RecordError(
                    start,
                    "FIELD_TOO_LARGE",
                    f"line {start}: a value is longer than {max_field_chars:,} "
                    f"characters{where}; {skipped_span}",
                )
            else:
                yield RecordError(
                    start,
                    "ROW_SHAPE",
                    f"line {start}: {_describe_csv_error(exc)}; {skipped_span}",
                )
            continue
        line = consumed + 1
        consumed += len(buf)
        buf.clear()
        # Blank: cheap test first (the first cell of a data row is almost never blank).
        if not cells or (not cells[0].strip() and not "".join(cells).strip()):
            continue
        yield Record(line, cells)


@dataclass(frozen=True)
class HeaderMap:
    """Where each column sits in the file's records."""

    width: int  # number of header cells
    columns: dict[str, int]  # dashboard column name -> cell index (columns present only)
    extras: dict[str, int]  # other (non-empty) header cells: normalised text -> cell index


def _normalised_cells(header: Record) -> list[str]:
    cells = [normalize_header(c) for c in header.cells]
    if cells:
        # utf-8-sig strips a BOM, but a file re-saved by some tools carries a stray one.
        cells[0] = normalize_header(cells[0].replace("\ufeff", ""))
    return cells


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _found(cells: list[str]) -> str:
    shown = ", ".join(_shorten(c) if c else "(empty)" for c in cells[:40])
    if len(cells) > 40:
        shown += f", … ({len(cells)} columns)"
    return shown or "(nothing)"


def _column_label(schema: DashboardSchema, name: str) -> str:
    """``FSEIBAN (製番)``: the canonical name and its aliases, as a planner knows them."""
    aliases = [a for a in schema.column(name).aliases if normalize_header(a) != name]
    return f"{name} ({'/'.join(aliases)})" if aliases else name


def _collect_extras(cells: list[str], used: set[int], file_name: str) -> dict[str, int]:
    extras: dict[str, int] = {}
    for index, text in enumerate(cells):
        if index in used or not text:
            # An unnamed column (typically Excel's trailing empty columns) cannot be kept:
            # there is no name to store its values under.
            continue
        if text in extras:
            raise RunError(
                "HEADER_MISMATCH",
                f"{file_name}: header {text!r} appears more than once "
                f"(columns {extras[text] + 1} and {index + 1})",
            )
        extras[text] = index
    return extras


def map_header(header: Record, schema: DashboardSchema, file_name: str) -> HeaderMap:
    """Match the header cells (trimmed, NFKC) to the dashboard's columns and aliases.

    Raises ``HEADER_MISMATCH`` when a required or key column is missing, when two header
    cells map onto one column, or when an extra header name is repeated.
    """
    cells = _normalised_cells(header)
    lookup: dict[str, str] = {}
    for col in schema.columns:
        for text in col.header_names():
            lookup.setdefault(text, col.name)

    columns: dict[str, int] = {}
    for index, text in enumerate(cells):
        name = lookup.get(text)
        if name is None:
            continue
        if name in columns:
            first = columns[name]
            raise RunError(
                "HEADER_MISMATCH",
                f"{file_name}: columns {first + 1} ({cells[first]}) and {index + 1} ({text}) "
                f"both map to {_column_label(schema, name)}; keep only one",
            )
        columns[name] = index

    needed = [c.name for c in schema.columns if (c.required or c.name in schema.key_columns)]
    missing = [name for name in needed if name not in columns]
    if missing:
        labels = ", ".join(_column_label(schema, name) for name in missing)
        raise RunError(
            "HEADER_MISMATCH",
            f"{file_name}: required column(s) {labels} missing from header; found: {_found(cells)}",
        )
    extras = _collect_extras(cells, set(columns.values()), file_name)
    return HeaderMap(width=len(cells), columns=columns, extras=extras)


def map_appearance_header(
    header: Record, schema: DashboardSchema, mapping: AppearanceMapping, file_name: str
) -> HeaderMap:
    """Header of an appearance feed: its key columns (per ``mapping``), status, extras.

    ``columns`` maps each dashboard key column name to the feed's cell index and, when the
    mapping has a status column, ``"__status__"`` to its index. Every other named column is
    an extra (merged into supplement_data).
    """
    cells = _normalised_cells(header)
    positions: dict[str, int] = {}
    for index, text in enumerate(cells):
        if text and text in positions:
            raise RunError(
                "HEADER_MISMATCH",
                f"{file_name}: header {text!r} appears more than once "
                f"(columns {positions[text] + 1} and {index + 1})",
            )
        positions.setdefault(text, index)

    unmapped = [k for k in schema.key_columns if k not in mapping.key_columns]
    if unmapped:
        raise RunError(
            "HEADER_MISMATCH",
            f"{file_name}: the feed's column mapping names no header for key column(s) "
            f"{', '.join(unmapped)}",
        )
    wanted: list[tuple[str, str]] = [(k, mapping.key_columns[k]) for k in schema.key_columns]
    if mapping.status_column is not None:
        wanted.append((STATUS_KEY, mapping.status_column))

    columns: dict[str, int] = {}
    missing: list[str] = []
    for key, feed_header in wanted:
        position = positions.get(normalize_header(feed_header))
        if position is None:
            label = "status" if key == STATUS_KEY else key
            missing.append(f"{feed_header} (for {label})")
        else:
            columns[key] = position
    if missing:
        raise RunError(
            "HEADER_MISMATCH",
            f"{file_name}: required column(s) {', '.join(missing)} missing from header; "
            f"found: {_found(cells)}",
        )
    extras = _collect_extras(cells, set(columns.values()), file_name)
    return HeaderMap(width=len(cells), columns=columns, extras=extras)
