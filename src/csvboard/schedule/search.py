"""What a kiosk searches and scopes by: search tokens split and normalised as the stored values
are, and the SQL condition each token stands for (docs/contract.md §5).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_

from csvboard.errors import InvalidRequest
from csvboard.schedule.expressions import Fields

MAX_SEARCH_TOKENS = 8
MAX_SEARCH_LENGTH = 400  # characters of a search a request may send
SEIBAN_LENGTH = 8

# Search separators as typed: every character whose NFKC form is "," or "、" (full-width ，,
# half-width ､, small and vertical presentation forms).
_TYPED_SEPARATORS = re.compile("[,、，､﹐﹑︐︑]")


@dataclass(frozen=True)
class Token:
    """A search term: NFKC-normalised (what key columns hold) and as typed (for 品名)."""

    value: str
    typed: str


def split_search(q: str | None) -> list[Token]:
    """The tokens of a search string (400 ``TOO_MANY_TOKENS`` beyond eight)."""
    if q is None:
        return []
    tokens: list[Token] = []
    for piece in _TYPED_SEPARATORS.split(q):
        value = unicodedata.normalize("NFKC", piece).strip()
        if value:
            tokens.append(Token(value=value, typed=piece.strip()))
    if len(tokens) > MAX_SEARCH_TOKENS:
        raise InvalidRequest(
            "TOO_MANY_TOKENS",
            f"{len(tokens)} search terms; at most {MAX_SEARCH_TOKENS} are allowed",
        )
    return tokens


def search_tokens(q: str | None) -> list[str]:
    """Split a search string into tokens: ``,`` / ``、`` / ``，``, NFKC, trimmed, non-empty."""
    return [t.value for t in split_search(q)]


def _ascii_lower(value: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in value)


def _contains(f: Fields, expr: ColumnElement[str], token: str) -> ColumnElement[bool]:
    escaped = token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{_ascii_lower(escaped)}%"
    if f.is_pg:
        return f.fold(expr).like(pattern, escape="\\")
    # SQLite's LIKE already ignores the case of ASCII letters (and only theirs), which is what
    # fold() means; without the lower() call a search reads the index about twice as fast.
    return expr.like(pattern, escape="\\")


def token_condition(f: Fields, token: Token) -> ColumnElement[bool]:
    """docs/contract.md §5: 8 characters → 製番 exactly or 品番/ProductNo partly; digits →
    ProductNo/品番 partly; anything else → 製番/品番/品名 partly. ASCII letters match in either
    case.

    Key columns and numbers are stored NFKC-normalised, so they are matched with the
    normalised token. 品名 keeps the characters the ERP wrote (㈱, ①), which NFKC would turn
    into (株), 1: it matches the token as normalised or as typed.
    """
    value = token.value
    if len(value) == SEIBAN_LENGTH:
        return or_(
            f.fold(f.seiban) == _ascii_lower(value),
            _contains(f, f.hincd, value),
            _contains(f, f.product_no, value),
        )
    if value.isascii() and value.isdigit():
        return or_(_contains(f, f.product_no, value), _contains(f, f.hincd, value))
    names = [_contains(f, f.hinmei, value)]
    if token.typed != value:
        names.append(_contains(f, f.hinmei, token.typed))
    return or_(_contains(f, f.seiban, value), _contains(f, f.hincd, value), *names)


def normalized_codes(values: Sequence[str]) -> list[str]:
    """Resource codes or 製番 as a scope names them: NFKC, trimmed, distinct, sorted."""
    return sorted({unicodedata.normalize("NFKC", v).strip() for v in values} - {""})


def index_only(token: Token) -> bool:
    """Whether :func:`token_condition` looks only at 製番, 品番 and ProductNo for it."""
    value = token.value
    return len(value) == SEIBAN_LENGTH or (value.isascii() and value.isdigit())


__all__ = [
    "MAX_SEARCH_LENGTH",
    "MAX_SEARCH_TOKENS",
    "SEIBAN_LENGTH",
    "Token",
    "index_only",
    "normalized_codes",
    "search_tokens",
    "split_search",
    "token_condition",
]
