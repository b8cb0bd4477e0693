"""Arrow pieces of the column-wise validators (``batches``): checked columns and joined JSON.

``CheckedColumn`` is one column of a block checked once per distinct value
(``checks.ColumnCheck``) and spread back over the rows with Arrow's ``take``.
``json_objects``, ``json_arrays`` and ``row_hashes`` build, element-wise over a block's rows,
the compact JSON the row path builds one row at a time (``validate.compact_json``,
``validate.canonical_key``, ``validate.row_hash``) from per-value JSON pieces;
``concatenated`` joins the pieces.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from csvboard.ingest.checks import ColumnCheck, InvalidValue

_sha256 = hashlib.sha256


def _json(value: str) -> str:
    return orjson.dumps(value).decode()


class CheckedColumn:
    """One column of a block, checked per distinct value and spread back over the rows."""

    def __init__(self, array: pa.Array, col: ColumnCheck | None) -> None:
        encoded = array.dictionary_encode()
        self.indices = encoded.indices
        values: list[str] = encoded.dictionary.to_pylist()
        self.ok = np.ones(len(values), dtype=bool)
        self.stored: list[str] = []
        self.numbers: list[str | None] = []
        self.instants: list[datetime | None] = []
        for i, raw in enumerate(values):
            if col is None:  # an extra column: kept stripped, never checked
                self.stored.append(raw.strip())
                self.numbers.append(None)
                self.instants.append(None)
                continue
            try:
                stored, number, instant = col.check(raw)
            except InvalidValue:
                self.ok[i] = False
                stored, number, instant = "", None, None
            self.stored.append(stored)
            self.numbers.append(None if number is None else str(number))
            self.instants.append(instant)

    def failed_rows(self) -> np.ndarray:
        failed: np.ndarray = ~self.ok[self.indices.to_numpy(zero_copy_only=False)]
        return failed

    def spread(self, per_value: list[str] | list[str | None], keep: pa.Array) -> pa.Array:
        """A value per distinct raw value, as a column of the kept rows."""
        return pa.array(per_value, pa.string()).take(self.indices.filter(keep))

    def json(self, keep: pa.Array) -> pa.Array:
        """The stored values as JSON strings, a column of the kept rows."""
        return self.spread([_json(s) for s in self.stored], keep)


def json_objects(names: list[str], pieces: list[pa.Array], rows: int) -> pa.Array:
    """Compact JSON objects ``{name: piece, ...}`` (``pieces``: JSON values), ``rows`` long."""
    parts: list[pa.Array | str] = ["{"]
    for n, (name, piece) in enumerate(zip(names, pieces, strict=True)):
        parts += [("" if n == 0 else ",") + _json(name) + ":", piece]
    return concatenated(parts, "}", rows)


def json_arrays(pieces: list[pa.Array | str], rows: int) -> list[str]:
    """Compact JSON arrays of the JSON values ``pieces`` (``validate.canonical_key``)."""
    parts: list[pa.Array | str] = ["["]
    for n, piece in enumerate(pieces):
        parts += ["" if n == 0 else ",", piece]
    keys: list[str] = concatenated(parts, "]", rows).to_pylist()
    return keys


def row_hashes(
    names: list[str],
    order: list[int],
    pieces: list[pa.Array],
    completion: pa.Array | str,
    rows: int,
) -> list[str]:
    """``validate.row_hash`` of each row: sha256 of ``[{sorted data}, completion]``."""
    parts: list[pa.Array | str] = ["[{"]
    for n, i in enumerate(order):
        parts += [("" if n == 0 else ",") + _json(names[i]) + ":", pieces[i]]
    parts += ["},", completion]
    joined = concatenated(parts, "]", rows)
    return [_sha256(b).hexdigest() for b in joined.cast(pa.binary()).to_pylist()]


def concatenated(parts: list[pa.Array | str], tail: str, rows: int) -> pa.Array:
    """Element-wise concatenation of columns and literal strings (``tail`` last), ``rows`` long
    (all literals — a dashboard without key columns — make one value for every row)."""
    joined = pc.binary_join_element_wise(*parts, tail, "")
    if isinstance(joined, pa.Scalar):
        return pa.array([joined.as_py()] * rows, pa.string())
    return joined
