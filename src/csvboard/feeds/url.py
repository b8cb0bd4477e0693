"""The URL source: a feed's file fetched over HTTP(S) (docs/contract.md §4, "Scheduler").

The scheduler fires a URL feed on its cron schedule (a URL feed without one is fetched only
when someone asks). :func:`download` streams the body into the content-addressed store with
connect/read timeouts, a bound on the whole transfer and the upload size limit; any failure is
a :class:`FetchError`, recorded as the feed's ``last_error`` and creating no run.
:class:`UrlSource` turns a fetched file into a run unless an identical file is still queued.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import structlog
from sqlalchemy import Engine

from csvboard.db.engine import write_session
from csvboard.errors import CsvboardError
from csvboard.feeds.runs import queue_feed_run
from csvboard.feeds.state import (
    REQUESTED_BY,
    FeedGone,
    FeedOutcome,
    FeedSnapshot,
    dashboard_and_feed,
)
from csvboard.runs.service import active_identical_run
from csvboard.runs.vocabulary import RunKind
from csvboard.settings import Settings
from csvboard.storage import StoredFile, store_stream

log = structlog.get_logger("csvboard.scheduler")


class FetchError(Exception):
    """A URL feed's file could not be fetched; recorded as the feed's ``last_error``."""


_FILENAME_RE = re.compile(r"""filename\*?=(?:UTF-8'')?"?([^";]+)"?""", re.IGNORECASE)


def _download_name(url: str, content_disposition: str | None, fallback: str) -> str:
    if content_disposition:
        match = _FILENAME_RE.search(content_disposition)
        if match:
            return unquote(match.group(1)).strip() or fallback
    last = unquote(urlsplit(url).path.rsplit("/", 1)[-1]).strip()
    return last or fallback


def download(
    url: str,
    data_dir: Path,
    *,
    max_bytes: int,
    connect_timeout: float,
    read_timeout: float,
    total_seconds: float,
    fallback_name: str,
) -> StoredFile:
    """GET a URL into the content-addressed store, refusing errors and oversized bodies.

    The body is streamed to a temporary file (never held in memory) and counted as it comes, so
    a server that lies about or omits ``Content-Length`` still cannot exceed ``max_bytes``.
    ``read_timeout`` bounds each wait for data; ``total_seconds`` bounds a server that drips.
    """
    import httpx  # only URL feeds need it

    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise FetchError(f"{url!r} is not an http(s) URL")
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    downloads = data_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=downloads, prefix=".download-")
    deadline = time.monotonic() + total_seconds
    try:
        with (
            os.fdopen(fd, "wb") as out,
            httpx.Client(
                timeout=timeout, follow_redirects=True, headers={"User-Agent": "csvboard"}
            ) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise FetchError(f"HTTP {response.status_code} from {url}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{url} is too large: {int(declared)} bytes (limit {max_bytes})")
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url} is too large: over {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"{url} took longer than {total_seconds:g} s")
                out.write(chunk)
            name = _download_name(url, response.headers.get("content-disposition"), fallback_name)
        with open(tmp_name, "rb") as stream:
            return store_stream(data_dir, stream, name)
    except httpx.TimeoutException as exc:
        raise FetchError(f"timed out fetching {url} ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"could not fetch {url}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)


class _Skip(Exception):
    """Nothing to create (e.g. an identical file is already queued); not an error."""


class UrlSource:
    """Fetches URL feeds for the scheduler; each fetched file becomes one run.

    ``connect_timeout``/``read_timeout``: seconds to connect and for each wait for data;
    ``download_seconds``: the whole transfer; ``official_run_kind``: an official feed's runs.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        connect_timeout: float,
        read_timeout: float,
        download_seconds: float,
        official_run_kind: RunKind | str,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.download_seconds = download_seconds
        self.official_run_kind = official_run_kind

    def fire(self, feed: FeedSnapshot, outcome: FeedOutcome) -> None:
        """Fetch the feed's URL and queue a run of the file (errors go to ``outcome``)."""
        try:
            stored = download(
                feed.location or "",
                self.settings.data_dir,
                max_bytes=self.settings.max_upload_bytes,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                total_seconds=self.download_seconds,
                fallback_name=f"{feed.name}.csv",
            )
        except FetchError as exc:
            outcome.error = str(exc)
            log.warning("scheduler_fetch_failed", feed=outcome.feed_name, error=str(exc))
            return
        try:
            with write_session(self.engine) as session:
                dashboard, db_feed = dashboard_and_feed(session, feed)
                active = active_identical_run(session, dashboard.id, stored.sha256)
                if active is not None:
                    outcome.message = (
                        f"unchanged file; run {active} of it is still queued or running"
                    )
                    raise _Skip
                run = queue_feed_run(
                    session,
                    dashboard,
                    db_feed,
                    stored,
                    official_run_kind=self.official_run_kind,
                    requested_by=REQUESTED_BY,
                )
                outcome.run_ids.append(run.run_id)
                outcome.message = f"queued run {run.run_id} of {stored.file_name}"
        except _Skip:
            return
        except (CsvboardError, FeedGone) as exc:
            outcome.error = exc.args[0]
            return
        log.info("scheduler_run_queued", feed=outcome.feed_name, run_id=str(run.run_id))


__all__ = ["FetchError", "UrlSource", "download"]
