"""The block reader (ingest/blocks.py) yields exactly the records of parse.iter_records.

Same records, same physical line numbers, same parser errors (with their messages), on every
file of the malformed corpus and on generated files full of what Arrow must not be trusted
with: quoted newlines, quotes closed mid-value, lone CRs, NULs, blank and ragged lines, at
block sizes that cut files everywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvboard.ingest import blocks as blocks_module
from csvboard.ingest.blocks import Block, BlockReader
from csvboard.ingest.decode import detect_encoding, open_text
from csvboard.ingest.errors import RunError
from csvboard.ingest.parse import Record, RecordError, iter_records

from .corpus import build_corpus

Item = tuple[str, int, object]
LIMIT = 1 << 20


def _item(record: Record | RecordError) -> Item:
    if isinstance(record, Record):
        return ("record", record.line, record.cells)
    return (record.code, record.line, record.message)


def exact_records(path: Path, codec: str, limit: int = LIMIT) -> list[Item]:
    with open_text(path, codec) as stream:
        return [_item(r) for r in iter_records(stream, limit)]


def block_records(path: Path, codec: str, rows: int, limit: int = LIMIT) -> list[Item]:
    out: list[Item] = []
    for item in BlockReader(path, codec, limit, rows).read():
        if not isinstance(item, Block):
            out.append(_item(item))
            continue
        found: list[Item] = []
        if item.table is not None:
            columns = [item.table.column(i).to_pylist() for i in range(item.table.num_columns)]
            for k, line in enumerate(item.lines.tolist()):
                found.append(("record", line, [c[k] for c in columns]))
        found += [_item(r) for r in item.records]
        found.sort(key=lambda x: x[1])
        assert len(found) == item.count
        out += found
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("corpus")
    return [case.path for case in build_corpus(directory)]


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 5000])
def test_corpus_reads_alike(corpus: list[Path], rows: int) -> None:
    compared = 0
    for path in corpus:
        try:
            codec = detect_encoding(path, "auto")
        except RunError:
            continue  # undecodable files never reach a parser
        assert block_records(path, codec, rows) == exact_records(path, codec), path.name
        compared += 1
    assert compared >= 30


def test_clean_lines_go_to_arrow(tmp_path: Path) -> None:
    """The point of the reader: clean lines are parsed by Arrow, not one by one."""
    path = tmp_path / "f.csv"
    path.write_text('a,b,c\r\n1,"x,y",3\r\n4,5,6\r\n', encoding="utf-8")
    blocks = [b for b in BlockReader(path, "utf-8", LIMIT, 100).read() if isinstance(b, Block)]
    assert len(blocks) == 1
    assert blocks[0].records == []
    assert blocks[0].lines.tolist() == [2, 3]


def test_a_quoted_newline_across_blocks_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text('a,b\n1,"x\n\ny"\n2,z\n3,w\n', encoding="utf-8")
    assert block_records(path, "utf-8", 1) == exact_records(path, "utf-8")
    assert block_records(path, "utf-8", 1)[1] == ("record", 2, ["1", "x\n\ny"])


@pytest.mark.parametrize("quote", ["", '"'])
def test_a_byte_order_mark_inside_the_file_stays_in_its_cell(tmp_path: Path, quote: str) -> None:
    """Arrow drops a BOM at the start of what it reads; a block may start with such a line
    (files concatenated from exports), and its first cell must keep the U+FEFF it has."""
    path = tmp_path / "f.csv"
    text = f"a,b\r\n1,{quote}x{quote}\r\n\ufeff2,y\r\n3,z\r\n"
    path.write_bytes(text.encode("utf-8"))
    for rows in (1, 2, 100):
        assert block_records(path, "utf-8", rows) == exact_records(path, "utf-8"), rows
    assert block_records(path, "utf-8", 1)[2] == ("record", 3, ["\ufeff2", "y"])


def test_a_giant_line_is_read_by_the_exact_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocks_module, "_MAX_BUFFER", 1000)
    monkeypatch.setattr(blocks_module, "_READ_BYTES", 300)
    path = tmp_path / "f.csv"
    path.write_text("a,b\n1,2\n" + "x" * 5000 + ",3\n4,5\n", encoding="utf-8")
    limit = 2000
    expected = exact_records(path, "utf-8", limit)
    assert [e[0] for e in expected] == ["record", "record", "FIELD_TOO_LARGE", "record"]
    assert block_records(path, "utf-8", 2, limit) == expected


_cell = st.one_of(
    st.sampled_from(["", " ", "a", "1", "完了", "①㈱髙", "x y", "  z  "]),
    st.text(alphabet='ab,"\r\n\x00 \u3000', max_size=6),
)
_row = st.lists(_cell, min_size=1, max_size=4)


def _render(cells: list[str], quote: bool) -> str:
    if not quote:
        return ",".join(cells)
    return ",".join('"' + c.replace('"', '""') + '"' for c in cells)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    width = draw(st.integers(1, 4))
    lines = [",".join(f"h{i}" for i in range(width))]
    for cells in draw(st.lists(_row, max_size=25)):
        how = draw(st.sampled_from(["plain", "quoted", "raw"]))
        if how == "raw":  # whatever the cells make of it: broken quoting, stray CRs, …
            lines.append(",".join(cells))
        else:
            lines.append(_render(cells, how == "quoted"))
    ends = draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(lines)))
    body = "".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    if draw(st.booleans()):
        body = body.rstrip("\r\n")
    return body.encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_files(), rows=st.integers(1, 6))
def test_generated_files_read_alike(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, rows: int
) -> None:
    path = tmp_path_factory.mktemp("gen") / "f.csv"
    path.write_bytes(data)
    assert block_records(path, "utf-8", rows) == exact_records(path, "utf-8")
