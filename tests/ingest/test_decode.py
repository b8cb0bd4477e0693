"""Encoding detection: BOM / strict UTF-8 / strict CP932, streamed; precise failures."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csvboard.dashboards.columns import Encoding
from csvboard.ingest import decode
from csvboard.ingest.decode import detect_encoding, open_text
from csvboard.ingest.errors import RunError

SPECIAL = "①㈱髙"  # NEC/IBM extensions: in CP932, not in JIS X 0208 (Python's shift_jis)


def write(tmp_path: Path, data: bytes, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_run_error_str_and_attributes() -> None:
    err = RunError("HEADER_MISMATCH", "x.csv: missing")
    assert err.code == "HEADER_MISMATCH"
    assert err.message == "x.csv: missing"
    assert str(err) == "HEADER_MISMATCH: x.csv: missing"


def test_cp932_extensions_decode_as_cp932_not_shift_jis(tmp_path: Path) -> None:
    data = f"製番,品名\r\nAB123456,{SPECIAL}製作所\r\n".encode("cp932")
    # The distinction that matters: shift_jis cannot even read these bytes.
    with pytest.raises(UnicodeDecodeError):
        data.decode("shift_jis")
    with pytest.raises(UnicodeEncodeError):
        SPECIAL.encode("shift_jis")
    path = write(tmp_path, data)
    assert detect_encoding(path, "auto") == "cp932"
    assert detect_encoding(path, "cp932") == "cp932"
    with open_text(path, "cp932") as fh:
        assert SPECIAL in fh.read()


def test_utf8_bom_is_utf8_sig_and_stripped(tmp_path: Path) -> None:
    path = write(tmp_path, codecs.BOM_UTF8 + "製番\r\n①\r\n".encode())
    assert detect_encoding(path, "auto") == "utf-8-sig"
    # A forced utf-8 setting still strips the BOM rather than leaking it into the header.
    assert detect_encoding(path, "utf-8") == "utf-8-sig"
    with open_text(path, "utf-8-sig") as fh:
        assert fh.read() == "製番\r\n①\r\n"


def test_strict_utf8_without_bom(tmp_path: Path) -> None:
    path = write(tmp_path, f"製番,品名\n{SPECIAL}\n".encode())
    assert detect_encoding(path, "auto") == "utf-8"
    assert detect_encoding(path, "utf-8") == "utf-8"


def test_ascii_is_utf8(tmp_path: Path) -> None:
    assert detect_encoding(write(tmp_path, b"a,b\n1,2\n"), "auto") == "utf-8"


@pytest.mark.parametrize("setting", ["auto", "utf-8", "cp932"])
def test_empty_file_is_utf8(tmp_path: Path, setting: Encoding) -> None:
    assert detect_encoding(write(tmp_path, b""), setting) == "utf-8"


def test_invalid_bytes_name_file_line_and_bytes(tmp_path: Path) -> None:
    data = b"a,b\r\n1,2\r\n3,\x81\x2c\r\n"
    path = write(tmp_path, data, "export.csv")
    with pytest.raises(RunError) as info:
        detect_encoding(path, "auto")
    err = info.value
    assert err.code == "ENCODING_UNSUPPORTED"
    assert err.message.startswith("export.csv: line 3: bytes 0x81 0x2C are neither UTF-8 nor CP932")
    assert "byte offset 12" in err.message


def test_invalid_utf8_midfile_that_is_not_cp932_reports_the_utf8_position(
    tmp_path: Path,
) -> None:
    good = "".join(f"製番{i},部品,①\n" for i in range(100)).encode()
    # A character cut in half ("品" is E5 93 81): E5 then a comma.
    data = good + "部".encode() + b"\xe5,x\n" + b"ok\n"
    with pytest.raises(UnicodeDecodeError):
        data.decode("cp932")
    path = write(tmp_path, data)
    with pytest.raises(RunError) as info:
        detect_encoding(path, "auto")
    assert info.value.code == "ENCODING_UNSUPPORTED"
    assert "line 101: bytes 0xE5 0x2C are neither UTF-8 nor CP932" in info.value.message


def test_invalid_cp932_far_into_a_cp932_file_reports_the_cp932_position(tmp_path: Path) -> None:
    good = "".join(f"製番{i},㈱髙橋\r\n" for i in range(50)).encode("cp932")
    path = write(tmp_path, good + b"x,\x82\r\n")  # 0x82 0x0D: lead byte without a trail
    with pytest.raises(RunError) as info:
        detect_encoding(path, "auto")
    # UTF-8 fails on line 1 already; CP932 got to line 51: that is the useful position.
    assert "line 51: bytes 0x82 0x0D" in info.value.message


def test_truncated_multibyte_at_eof(tmp_path: Path) -> None:
    path = write(tmp_path, "製番\n".encode() + "品".encode()[:1])
    with pytest.raises(RunError) as info:
        detect_encoding(path, "utf-8")
    assert "line 2: byte 0xE5 is not valid UTF-8" in info.value.message


def test_forced_utf8_on_cp932_file_fails_naming_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\n1,2\n" + "㈱,髙\n".encode("cp932"), "sjis.csv")
    assert detect_encoding(path, "auto") == "cp932"
    with pytest.raises(RunError) as info:
        detect_encoding(path, "utf-8")
    assert info.value.code == "ENCODING_UNSUPPORTED"
    assert info.value.message.startswith("sjis.csv: line 3: bytes 0x87 0x8A are not valid UTF-8")
    assert "set to utf-8" in info.value.message


def test_forced_cp932_on_invalid_cp932_fails(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\n\x81\n")
    with pytest.raises(RunError) as info:
        detect_encoding(path, "cp932")
    assert info.value.code == "ENCODING_UNSUPPORTED"
    assert "line 2: bytes 0x81 0x0A are not valid CP932" in info.value.message


def test_forced_cp932_on_utf8_decodes_as_cp932(tmp_path: Path) -> None:
    # Forced means forced: UTF-8 bytes that happen to be valid CP932 are read as CP932.
    path = write(tmp_path, "abc,製\n".encode())
    assert detect_encoding(path, "cp932") == "cp932"


def test_bom_followed_by_invalid_utf8_fails(tmp_path: Path) -> None:
    path = write(tmp_path, codecs.BOM_UTF8 + b"a,b\n" + "㈱\n".encode("cp932"))
    with pytest.raises(RunError) as info:
        detect_encoding(path, "auto")
    assert "line 2" in info.value.message
    assert "byte order mark" in info.value.message


def test_detection_streams_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads never exceed CHUNK_SIZE, and characters split across chunks still decode."""
    monkeypatch.setattr(decode, "CHUNK_SIZE", 5)
    reads: list[int] = []
    real_open = Path.open

    class Spy:
        def __init__(self, fh: object) -> None:
            self._fh = fh

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self._fh.close()  # type: ignore[attr-defined]

        def read(self, n: int) -> bytes:
            reads.append(n)
            return self._fh.read(n)  # type: ignore[attr-defined,no-any-return]

        def seek(self, n: int) -> int:
            return self._fh.seek(n)  # type: ignore[attr-defined,no-any-return]

    def spy_open(self: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        fh = real_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]
        return Spy(fh) if mode == "rb" else fh

    monkeypatch.setattr(Path, "open", spy_open)
    path = tmp_path / "f.csv"
    path.write_bytes(("①㈱髙\n" * 20).encode("cp932"))
    assert detect_encoding(path, "auto") == "cp932"
    assert reads and max(reads) <= 5


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(
        alphabet=st.sampled_from(list('abc,\n\r"製番品名①㈱髙ｱｲｳ　ー～')), min_size=1, max_size=80
    ),
    chunk=st.integers(min_value=1, max_value=7),
    bad_at=st.integers(min_value=0, max_value=80),
)
def test_property_detection_and_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, chunk: int, bad_at: int
) -> None:
    """Any chunk size gives the same answer; an injected bad pair is found at its line."""
    monkeypatch.setattr(decode, "CHUNK_SIZE", chunk)
    for codec in ("utf-8", "cp932"):
        data = text.encode(codec)
        path = write(tmp_path, data)
        got = detect_encoding(path, "auto")
        try:
            data.decode("utf-8")
            assert got == "utf-8"
        except UnicodeDecodeError:
            assert got == "cp932"

        # Insert 0x81 0x0A at a character boundary: neither UTF-8 nor CP932.
        cut = min(bad_at, len(text))
        prefix = text[:cut].encode(codec)
        broken = prefix + b"\x81\n" + text[cut:].encode(codec)
        path = write(tmp_path, broken)
        with pytest.raises(RunError) as info:
            detect_encoding(path, codec)  # forced: the position is exactly the bad pair
        # Lines as the csv reader counts them: CRLF, LF or a lone CR.
        line = prefix.count(b"\n") + prefix.count(b"\r") - prefix.count(b"\r\n") + 1
        assert f"line {line}: bytes 0x81 0x0A" in info.value.message
        assert f"(byte offset {len(prefix)})" in info.value.message


def test_open_text_keeps_newlines_for_csv(tmp_path: Path) -> None:
    path = write(tmp_path, b'a,"x\r\ny"\r\n')
    with open_text(path, "utf-8") as fh:
        assert fh.read() == 'a,"x\r\ny"\r\n'
