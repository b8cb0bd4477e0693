"""Conditional GETs: a response's weak ETag of its own content, and ``304 Not Modified`` when
the client already holds it (what a board's poll sends back as ``If-None-Match``)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from fastapi import Request, Response


def etag_or_not_modified(request: Request, response: Response, doc: dict[str, Any]) -> Any:
    """The document with a weak ETag of its own content, or ``304`` when the client's
    ``If-None-Match`` already names it (a poll that found nothing changed)."""
    digest = hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), digest_size=12)
    tag = f'W/"{digest.hexdigest()}"'
    response.headers["ETag"] = tag
    sent = request.headers.get("if-none-match")
    if tag and sent and tag in [t.strip() for t in sent.split(",")]:
        return Response(status_code=304, headers={"ETag": tag})
    return doc


__all__ = ["etag_or_not_modified"]
