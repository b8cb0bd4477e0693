"""The row key, data hash and stored JSON keep the bytes of the json module's canonical form.

They are written by orjson for speed; rows stored before that change were hashed with
``json.dumps(ensure_ascii=False, separators=(",", ":"), sort_keys=True)``, so a different
byte anywhere would make every stored row look changed on the next ingest.
"""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from csvboard.ingest.validate import canonical_key, compact_json, row_hash

# Any text a decoded CSV cell can hold: control characters, quotes, backslashes, U+2028,
# CJK, astral characters (no lone surrogates: strict decoding never yields them).
cells = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
rows = st.dictionaries(cells, cells, max_size=12)


@given(rows, st.sampled_from([True, False, None]))
def test_row_hash_is_sha256_of_json_module_canonical_form(
    data: dict[str, str], completion: bool | None
) -> None:
    expected = json.dumps(
        [data, completion], ensure_ascii=False, separators=(",", ":"), sort_keys=True
    )
    assert row_hash(data, completion) == hashlib.sha256(expected.encode()).hexdigest()


@given(st.lists(cells, min_size=1, max_size=6))
def test_canonical_key_is_json_module_compact_array(values: list[str]) -> None:
    assert canonical_key(values) == json.dumps(values, ensure_ascii=False, separators=(",", ":"))


@given(rows)
def test_compact_json_keeps_order_and_text(data: dict[str, str]) -> None:
    text = compact_json(data)
    assert text == json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    assert list(json.loads(text)) == list(data)


def test_known_values() -> None:
    assert canonical_key(["AB1", "髙①㈱", 'q"\\']) == '["AB1","髙①㈱","q\\"\\\\"]'
    assert compact_json({"b": "\x00\n", "a": "x"}) == '{"b":"\\u0000\\n","a":"x"}'
