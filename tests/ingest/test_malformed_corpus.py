"""Every corpus file through decode -> map_header -> iter_records -> RowValidator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ingest.corpus import CASE_NAMES, CorpusCase, build_corpus, run_pipeline


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CorpusCase]:
    cases = build_corpus(tmp_path_factory.mktemp("corpus"))
    return {case.name: case for case in cases}


def test_corpus_is_large_and_names_are_unique(tmp_path: Path) -> None:
    cases = build_corpus(tmp_path)
    assert len(cases) >= 20
    assert [c.name for c in cases] == list(CASE_NAMES)
    assert len(set(CASE_NAMES)) == len(CASE_NAMES)
    assert all(c.path.exists() for c in cases)
    # Both outcomes are represented: run-level failures and row-level rejections.
    assert sum(c.run_error is not None for c in cases) >= 5
    reasons = Counter(r for c in cases for r in c.reasons)
    for code in (
        "ROW_SHAPE",
        "REQUIRED",
        "PATTERN",
        "TYPE",
        "LENGTH",
        "INVALID_CHARACTER",
        "FIELD_TOO_LARGE",
    ):
        assert reasons[code] >= 1, code


@pytest.mark.parametrize("name", CASE_NAMES)
def test_corpus_case(corpus: dict[str, CorpusCase], name: str) -> None:
    case = corpus[name]
    outcome = run_pipeline(case.path, case.encoding)

    if case.run_error is None:
        assert outcome.run_error is None, str(outcome.run_error)
    else:
        assert outcome.run_error is not None
        assert outcome.run_error.code == case.run_error
        for fragment in case.run_error_mentions:
            assert fragment in outcome.run_error.message
    assert outcome.codec == case.codec

    assert len(outcome.valid) == case.valid
    assert len(outcome.rejected) == case.rejected
    assert tuple(r.reason_code for r in outcome.rejected) == case.reasons
    assert tuple(r.line for r in outcome.rejected) == case.rejected_lines
    assert outcome.excluded_duplicate_lines() == case.excluded_duplicate_lines

    by_line = {row.line: row for row in outcome.valid}
    for line, column, expected in case.values:
        assert by_line[line].row_data[column] == expected

    for rejected in outcome.rejected:
        # Every message names its line, so a planner can find the row.
        assert rejected.message.startswith(f"line {rejected.line}")
        assert rejected.value is None or len(rejected.value) <= 200
    for row in outcome.valid:
        assert "progress" not in row.row_data
