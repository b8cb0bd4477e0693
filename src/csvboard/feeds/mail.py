"""Mail feeds: CSV files that arrive as mail attachments, polled over IMAP.

The scheduler's leader calls :meth:`MailPoller.poll` for each enabled ``imap`` feed on every
tick; the poller connects only when the feed is due (its ``poll_seconds`` interval, or its cron
schedule), through the client of ``feeds/imap.py``.

**One poll** (one connection):

1. *Settle* what earlier polls claimed, once the run has ended: ``succeeded``/``partial`` →
   the message is marked ``\\Seen`` and moved to ``processed_folder``; ``failed`` with a code the
   product will never accept on a retry (``HEADER_MISMATCH``, ``ENCODING_UNSUPPORTED``,
   ``ALL_ROWS_REJECTED``, ``FILE_MISSING``), a cancelled run, or a third failure → moved to
   ``rejected_folder`` with a ``mail_rejected`` event on the run; any other failure (a lost
   worker, a timeout) → released for the next poll to claim again.
2. *Fetch*: the unseen messages of ``folder`` whose sender is on ``allowed_senders`` and whose
   subject matches ``subject_pattern`` (others are left alone, unread), oldest first by their
   ``Date`` header. Each one's first CSV attachment is stored like an upload and becomes one
   run (``mode = scheduled``, ``requested_by = mail:<sender>``), its source recording the
   message id. A message with no CSV attachment, or one over the upload size limit, has no
   run: it is moved to ``rejected_folder`` and the reason shows on the feed's state.

**Exactly once.** A message is keyed by its ``Message-ID`` header (else ``sha256:`` of the raw
message). The key is claimed in ``mail_messages`` (UNIQUE (feed, key)) *in the transaction
that creates the run* (``feeds/mail_claims.py``): of several schedulers polling one mailbox
exactly one gets the row back and creates the run; a crash before the commit leaves neither a
claim nor a run, and the message is still unread. A second copy of an already claimed message
(another UID with the same key) is never ingested: it is marked read and moved to the
processed folder.

**Errors.** A server that cannot be reached, a timeout or a dropped connection leaves every
message where it is; the error is the feed's ``last_error`` and, when it outlasts three poll
intervals (at least 5 minutes), the health endpoint reports the feed (``csvboard.feeds.health``).

The password is read from an environment variable or a file at each poll; it is never stored
in the database, never logged and never part of an error message.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import io
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import Enum
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.db.engine import write_session
from csvboard.feeds import mail_claims
from csvboard.feeds.imap import (
    Mailbox,
    MailServerError,
    MessageHeader,
    connect,
    csv_attachment,
    message_key,
    sender_allowed,
)
from csvboard.feeds.imap_options import (
    ImapOptions,
    MailConfigError,
    parse_options,
    resolve_password,
)
from csvboard.feeds.models import MailMessage, MailState
from csvboard.feeds.runs import queue_feed_run
from csvboard.runs.vocabulary import EventStatus, RunKind
from csvboard.settings import Settings
from csvboard.storage import store_stream

log = structlog.get_logger("csvboard.mail")

#: ``requested_by`` prefix of runs made from mail.
REQUESTED_BY_PREFIX = "mail:"


class FeedLike(Protocol):
    """What the poller needs of a feed (the scheduler's ``FeedSnapshot`` has it)."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def dashboard_id(self) -> uuid.UUID: ...

    @property
    def name(self) -> str: ...

    @property
    def options(self) -> dict[str, Any] | None: ...


class _Taken(Enum):
    """What became of one message a poll tried to take."""

    QUEUED = "queued"  # claimed, its run queued
    REJECTED = "rejected"  # nothing to ingest: moved to the rejected folder
    DUPLICATE = "duplicate"  # another copy of a claimed message: moved to processed
    LOST = "lost"  # another scheduler holds it, or it vanished


@dataclass
class MailPollResult:
    """What one poll of a feed did (the scheduler turns it into the feed's state)."""

    run_ids: list[uuid.UUID]
    message: str | None = None
    error: str | None = None
    polled: bool = False
    succeeded: bool = False
    rejections: list[str] = field(default_factory=list)


class MailPoller:
    """Polls imap feeds for a scheduler (one per scheduler; see the module docstring).

    ``timeout``: seconds for the connection and for each network call after it.
    ``max_messages``: messages taken per poll (the rest on the next poll).
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        timeout: float = 30.0,
        max_messages: int = 100,
        official_run_kind: RunKind | str = RunKind.OFFICIAL_INGESTION,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.timeout = timeout
        self.max_messages = max_messages
        self.official_run_kind = official_run_kind
        # Monotonic time of each feed's next poll (interval feeds; per process).
        self._next_poll: dict[uuid.UUID, float] = {}

    def due(self, feed: FeedLike, options: ImapOptions) -> bool:
        """Whether an interval feed is due now (and if so, book the next poll)."""
        now = time.monotonic()
        if now < self._next_poll.get(feed.id, -math.inf):
            return False
        self._next_poll[feed.id] = now + options.poll_seconds
        return True

    def poll(self, feed: FeedLike, *, check_due: bool = True) -> MailPollResult:
        """Settle finished messages, then claim new ones (see the module docstring)."""
        result = MailPollResult(run_ids=[])
        try:
            options = parse_options(feed.options)
        except MailConfigError as exc:
            result.error = str(exc)
            return result
        if check_due and not self.due(feed, options):
            return result
        result.polled = True
        where = f"{options.host}:{options.effective_port}"
        try:
            password = resolve_password(options)
        except MailConfigError as exc:
            result.error = str(exc)
            return result
        try:
            client = connect(options, password, timeout=self.timeout)
        except imaplib.IMAP4.error as exc:
            # Not .abort: the server answered and refused (e.g. wrong password).
            result.error = f"{where}: login refused: {_describe(exc)}"
            return result
        except (OSError, EOFError) as exc:
            result.error = f"{where}: cannot connect: {_describe(exc)}"
            log.warning("mail_connect_failed", feed=feed.name, server=where, error=result.error)
            return result
        del password
        box = Mailbox(client)
        try:
            box.select(options.folder)
            settled = self._settle(box, feed, options)
            taken, notes = self._fetch(box, feed, options, result)
            parts = [f"polled {options.folder} at {where}"]
            if taken:
                parts.append(f"queued {taken} run(s)")
            parts.extend(notes)
            if settled:
                parts.append(f"settled {settled} message(s)")
            result.message = "; ".join(parts)
            result.succeeded = True
        except (OSError, EOFError, imaplib.IMAP4.abort) as exc:
            result.error = f"{where}: connection lost: {_describe(exc)}"
            log.warning("mail_poll_failed", feed=feed.name, server=where, error=result.error)
        except (imaplib.IMAP4.error, MailServerError) as exc:
            result.error = f"{where}: {_describe(exc)}"
            log.warning("mail_poll_failed", feed=feed.name, server=where, error=result.error)
        finally:
            box.close()
        return result

    # -- settling claimed messages --

    def _settle(self, box: Mailbox, feed: FeedLike, options: ImapOptions) -> int:
        """Move claimed messages whose run has ended; release transient failures."""
        settled = 0
        for row, target, why in mail_claims.settle_plans(self.engine, feed.id):
            if target == MailState.RETRY:
                mail_claims.transition(self.engine, row, MailState.RETRY, why, event=None)
                continue
            uid = self._current_uid(box, row)
            if uid is not None:
                if target == MailState.PROCESSED:
                    box.move(uid, options.processed_folder, seen=True)
                else:
                    box.move(uid, options.rejected_folder, seen=False)
            if target == MailState.PROCESSED:
                note = f"message moved to {options.processed_folder}"
                event = ("mail_processed", EventStatus.SUCCESS, note)
            else:
                note = f"message moved to {options.rejected_folder}: {why}"
                event = ("mail_rejected", EventStatus.WARN, note)
            if mail_claims.transition(self.engine, row, target, why, event=event):
                settled += 1
        return settled

    @staticmethod
    def _current_uid(box: Mailbox, row: MailMessage) -> int | None:
        if row.uid is not None and row.uidvalidity == box.uidvalidity:
            return row.uid
        return box.find(row.message_id)

    # -- taking new messages --

    def _fetch(
        self, box: Mailbox, feed: FeedLike, options: ImapOptions, result: MailPollResult
    ) -> tuple[int, list[str]]:
        uids = box.unseen()
        if not uids:
            return 0, ["no new message"]
        pattern = re.compile(options.subject_pattern) if options.subject_pattern else None
        headers = [
            h
            for h in box.headers(uids)
            if sender_allowed(h.sender, options.allowed_senders)
            and (pattern is None or pattern.search(h.subject))
        ]
        ignored = len(uids) - len(headers)
        headers.sort(key=MessageHeader.sort_key)
        keys = [message_key(h.message_id, None) for h in headers if h.message_id]
        known = mail_claims.known(self.engine, feed.id, keys)
        taken = duplicates = rejected = 0
        notes: list[str] = []
        for header in headers:
            if taken + rejected >= self.max_messages:
                notes.append("more messages wait for the next poll")
                break
            claim = known.get(message_key(header.message_id, None)) if header.message_id else None
            if claim is not None and claim.state != MailState.RETRY:
                if (claim.uidvalidity, claim.uid) != (box.uidvalidity, header.uid):
                    # Another copy of a message already claimed: never ingested twice.
                    box.move(header.uid, options.processed_folder, seen=True)
                    duplicates += 1
                continue
            outcome = self._take(box, feed, options, header, result)
            if outcome is _Taken.QUEUED:
                taken += 1
            elif outcome is _Taken.REJECTED:
                rejected += 1
            elif outcome is _Taken.DUPLICATE:
                duplicates += 1
        if rejected:
            notes.append(f"rejected {rejected} message(s): " + "; ".join(result.rejections))
        if duplicates:
            notes.append(f"{duplicates} duplicate message(s) moved to {options.processed_folder}")
        if ignored:
            notes.append(f"{ignored} message(s) not matching sender or subject left unread")
        return taken, notes

    def _take(
        self,
        box: Mailbox,
        feed: FeedLike,
        options: ImapOptions,
        header: MessageHeader,
        result: MailPollResult,
    ) -> _Taken:
        """Claim one message and queue its run, or reject it."""
        limit = self.settings.max_upload_bytes
        # Base64 grows a file by 4/3: a message this large cannot hold an acceptable file.
        if header.size > limit * 4 // 3 + (1 << 20):
            reason = f"message of {header.size} bytes is over the upload limit ({limit} bytes)"
            key = message_key(header.message_id, f"{box.uidvalidity}:{header.uid}".encode())
            return self._reject(box, feed, options, header, key, reason, result)
        raw = box.raw(header.uid)
        if raw is None:
            return _Taken.LOST  # gone since the search (another scheduler moved it)
        key = message_key(header.message_id, raw)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        attachment = csv_attachment(msg)
        if attachment is None:
            return self._reject(box, feed, options, header, key, "no CSV attachment", result)
        file_name, payload = attachment
        if len(payload) > limit:
            reason = f"attachment {file_name} is {len(payload)} bytes, over the limit ({limit})"
            return self._reject(box, feed, options, header, key, reason, result)
        stored = store_stream(self.settings.data_dir, io.BytesIO(payload), file_name)
        with write_session(self.engine) as session:
            if not self._claim(session, feed, box, header, key, MailState.QUEUED, None):
                return self._lost(box, feed, options, header, key)
            dashboard = session.get(CsvDashboard, feed.dashboard_id)
            db_feed = session.get(CsvDashboardFeed, feed.id)
            if dashboard is None or db_feed is None:
                raise MailServerError(f"feed {feed.name} was deleted")  # rolls the claim back
            run = queue_feed_run(
                session,
                dashboard,
                db_feed,
                stored,
                official_run_kind=options.run_kind or self.official_run_kind,
                requested_by=REQUESTED_BY_PREFIX + (header.sender or "unknown"),
                message_id=key,
            )
            mail_claims.attach_run(session, feed.id, key, run.run_id)
            run_id = run.run_id
        result.run_ids.append(run_id)
        log.info("mail_run_queued", feed=feed.name, run_id=str(run_id), sender=header.sender)
        return _Taken.QUEUED

    @staticmethod
    def _claim(
        session: Session,
        feed: FeedLike,
        box: Mailbox,
        header: MessageHeader,
        key: str,
        state: MailState,
        reason: str | None,
    ) -> bool:
        return mail_claims.insert_claim(
            session,
            feed.id,
            key,
            state,
            uidvalidity=box.uidvalidity,
            uid=header.uid,
            sender=header.sender,
            subject=header.subject,
            reason=reason,
        )

    def _lost(
        self, box: Mailbox, feed: FeedLike, options: ImapOptions, header: MessageHeader, key: str
    ) -> _Taken:
        """Another claim holds the key: another copy (moved away) or another scheduler's."""
        row = mail_claims.holder(self.engine, feed.id, key)
        if row is not None and (row.uidvalidity, row.uid) != (box.uidvalidity, header.uid):
            box.move(header.uid, options.processed_folder, seen=True)
            return _Taken.DUPLICATE
        return _Taken.LOST

    def _reject(
        self,
        box: Mailbox,
        feed: FeedLike,
        options: ImapOptions,
        header: MessageHeader,
        key: str,
        reason: str,
        result: MailPollResult,
    ) -> _Taken:
        """A message with nothing to ingest: claimed as ``rejecting``, moved, then ``rejected``."""
        with write_session(self.engine) as session:
            if not self._claim(session, feed, box, header, key, MailState.REJECTING, reason):
                return self._lost(box, feed, options, header, key)
        box.move(header.uid, options.rejected_folder, seen=False)
        mail_claims.finish_rejection(self.engine, feed.id, key)
        result.rejections.append(f"message {key} from {header.sender or '?'}: {reason}")
        log.info("mail_rejected", feed=feed.name, message_id=key, reason=reason)
        return _Taken.REJECTED


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


__all__ = ["REQUESTED_BY_PREFIX", "FeedLike", "MailPollResult", "MailPoller"]
