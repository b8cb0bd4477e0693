"""One keyset-cursor codec for every paged list.

A cursor is the last row's sort values as compact JSON in URL-safe base64 without padding;
the list decodes it with the types it expects and turns the values into its keyset predicate.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from csvboard.errors import InvalidRequest

# What a cursor can look like (a query parameter's pattern): unpadded base64url; empty is the
# first page.
CURSOR_PATTERN = "^[A-Za-z0-9_-]*$"


def bad_cursor() -> InvalidRequest:
    return InvalidRequest("INVALID_CURSOR", "the cursor is not one this list returned")


def encode_cursor(values: Sequence[str | int]) -> str:
    raw = json.dumps(list(values), ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *shape: type) -> list[Any]:
    """The values of a cursor made by :func:`encode_cursor`, one of each type in ``shape``
    (``bool`` never counts as an ``int``); anything else is ``INVALID_CURSOR``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise bad_cursor() from exc
    if (
        not isinstance(values, list)
        or len(values) != len(shape)
        or any(
            isinstance(v, bool) or not isinstance(v, kind)
            for v, kind in zip(values, shape, strict=True)
        )
    ):
        raise bad_cursor()
    return values
