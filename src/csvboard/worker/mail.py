"""IMAP feeds: CSV files that arrive as mail attachments.

The scheduler's leader calls :meth:`MailPoller.poll` for each enabled ``imap`` feed on every
tick; the poller connects only when the feed is due (its ``poll_seconds`` interval, or its cron
schedule), with a timeout on every network call (stdlib ``imaplib``).

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
message). The key is claimed by ``INSERT … ON CONFLICT DO NOTHING/UPDATE … RETURNING`` into
``mail_messages`` (UNIQUE (feed, key)) *in the transaction that creates the run*: of several
schedulers polling one mailbox exactly one gets the row back and creates the run; a crash
before the commit leaves neither a claim nor a run, and the message is still unread. A second
copy of an already claimed message (another UID with the same key) is never ingested: it is
marked read and moved to the processed folder.

**Errors.** A server that cannot be reached, a timeout or a dropped connection leaves every
message where it is; the error is the feed's ``last_error`` and, when it outlasts three poll
intervals (at least 5 minutes), the health endpoint reports the feed (``csvboard.runs.api``).

The password is read from an environment variable or a file at each poll; it is never stored
in the database, never logged and never part of an error message.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import imaplib
import io
import math
import re
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from csvboard.clock import utcnow
from csvboard.dashboards.models import CsvDashboard, CsvDashboardFeed
from csvboard.db import upsert
from csvboard.db.engine import read_session, write_session
from csvboard.feeds.imap_options import (
    ImapOptions,
    MailConfigError,
    parse_options,
    resolve_password,
)
from csvboard.feeds.models import MailMessage
from csvboard.feeds.runs import queue_feed_run
from csvboard.runs import lifecycle
from csvboard.runs.models import IngestionRun
from csvboard.runs.queries import error_summary
from csvboard.runs.vocabulary import EventStatus, RunKind, RunStatus
from csvboard.settings import Settings
from csvboard.storage import store_stream

log = structlog.get_logger("csvboard.mail")

#: Failure codes a retry of the same file can never fix: such a message goes to rejected.
PERMANENT_CODES = frozenset(
    {"HEADER_MISMATCH", "ENCODING_UNSUPPORTED", "ALL_ROWS_REJECTED", "FILE_MISSING"}
)
#: A message whose runs failed (transiently) this many times is rejected, not retried again.
MAX_ATTEMPTS = 3
#: ``requested_by`` prefix of runs made from mail.
REQUESTED_BY_PREFIX = "mail:"
#: Messages whose headers are fetched per FETCH command.
HEADER_BATCH = 200
_FETCH_UID_RE = re.compile(rb"UID (\d+)")
_FETCH_SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")


class MailServerError(Exception):
    """The server could not be reached or did not answer as expected: messages stay put."""


# --- the IMAP client ----------------------------------------------------------------------


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


def connect(options: ImapOptions, password: str, *, timeout: float) -> imaplib.IMAP4:
    """A logged-in client; ``timeout`` bounds the connect and every later socket operation."""
    host, port = options.host, options.effective_port
    context: ssl.SSLContext | None = None
    if options.tls != "none":
        context = ssl.create_default_context(cafile=options.ca_file)
    client: imaplib.IMAP4
    if options.tls == "implicit":
        client = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=timeout)
    else:
        client = imaplib.IMAP4(host, port, timeout=timeout)
    try:
        if options.tls == "starttls":
            client.starttls(ssl_context=context)
        client.login(options.user, password)
    except BaseException:
        with contextlib.suppress(Exception):
            client.shutdown()
        raise
    return client


def _quote(mailbox: str) -> str:
    return '"' + mailbox + '"'


def _ok(result: tuple[str, Any], what: str) -> Any:
    typ, data = result
    if typ != "OK":
        detail = b" ".join(d for d in data or [] if isinstance(d, bytes)).decode(errors="replace")
        raise MailServerError(f"{what} failed: {typ} {detail}".strip())
    return data


@dataclass(frozen=True)
class MessageHeader:
    """The parts of a message's header the filters and the ordering need."""

    uid: int
    size: int
    message_id: str | None
    sender: str
    subject: str
    date: datetime | None

    def sort_key(self) -> tuple[float, int]:
        return (self.date.timestamp() if self.date else math.inf, self.uid)


def _fetch_parts(data: list[Any]) -> list[tuple[bytes, bytes]]:
    """``(descriptor, literal)`` pairs of an imaplib FETCH answer."""
    return [(item[0], item[1]) for item in data if isinstance(item, tuple) and len(item) == 2]


def _header_of(uid: int, size: int, raw: bytes) -> MessageHeader:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    message_id = str(msg.get("Message-ID", "") or "").strip() or None
    sender = parseaddr(str(msg.get("From", "") or ""))[1].strip().lower()
    subject = str(msg.get("Subject", "") or "")
    date: datetime | None = None
    with contextlib.suppress(TypeError, ValueError, IndexError):
        raw_date = msg.get("Date")
        if raw_date:
            date = parsedate_to_datetime(str(raw_date))
            if date.tzinfo is None:
                date = None
    return MessageHeader(uid, size, message_id, sender, subject, date)


def message_key(message_id: str | None, raw: bytes | None) -> str:
    """The claim key: the Message-ID (hashed if over 255 characters), else the raw's sha256."""
    if message_id:
        if len(message_id) <= 255:
            return message_id
        return "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()
    assert raw is not None
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def csv_attachment(msg: EmailMessage) -> tuple[str, bytes] | None:
    """The first CSV attachment of a message: ``(file name, bytes as sent)``."""
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        ctype = part.get_content_type()
        if (name and name.lower().endswith(".csv")) or (
            ctype in ("text/csv", "application/csv") and part.get_content_disposition()
        ):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return (name or "attachment.csv", payload)
    return None


def sender_allowed(sender: str, allowed: list[str]) -> bool:
    if not allowed:
        return True
    domain = "@" + sender.rpartition("@")[2]
    return any(entry == sender or (entry.startswith("@") and entry == domain) for entry in allowed)


class Mailbox:
    """One logged-in connection with the folder operations the poller needs."""

    def __init__(self, client: imaplib.IMAP4) -> None:
        self.client = client
        self._created: set[str] = set()
        self.selected: str | None = None
        self.uidvalidity: int | None = None

    def select(self, folder: str) -> None:
        _ok(self.client.select(_quote(folder)), f"SELECT {folder}")
        self.selected = folder
        _, data = self.client.response("UIDVALIDITY")
        value = data[0] if data else None
        self.uidvalidity = int(value) if value else None

    def unseen(self) -> list[int]:
        data = _ok(self.client.uid("SEARCH", "UNSEEN"), "SEARCH UNSEEN")
        return [int(x) for x in (data[0] or b"").split()] if data else []

    def headers(self, uids: list[int]) -> list[MessageHeader]:
        found: list[MessageHeader] = []
        for start in range(0, len(uids), HEADER_BATCH):
            chunk = ",".join(str(u) for u in uids[start : start + HEADER_BATCH])
            data = _ok(
                self.client.uid(
                    "FETCH",
                    chunk,
                    "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID FROM SUBJECT DATE)])",
                ),
                "FETCH headers",
            )
            for descriptor, literal in _fetch_parts(data):
                uid = _FETCH_UID_RE.search(descriptor)
                size = _FETCH_SIZE_RE.search(descriptor)
                if uid:
                    found.append(
                        _header_of(int(uid.group(1)), int(size.group(1)) if size else 0, literal)
                    )
        return found

    def raw(self, uid: int) -> bytes | None:
        data = _ok(self.client.uid("FETCH", str(uid), "(BODY.PEEK[])"), "FETCH message")
        parts = _fetch_parts(data)
        return parts[0][1] if parts else None

    def ensure_folder(self, folder: str) -> None:
        if folder not in self._created:
            typ, data = self.client.create(_quote(folder))
            text = b" ".join(d for d in data or [] if isinstance(d, bytes)).upper()
            if typ != "OK" and b"ALREADYEXISTS" not in text and b"EXISTS" not in text:
                detail = text.decode(errors="replace")
                raise MailServerError(f"cannot create folder {folder}: {detail}")
            self._created.add(folder)

    def move(self, uid: int, folder: str, *, seen: bool) -> None:
        """Move a message of the selected folder (marking it read first if ``seen``).

        A UID that is no longer there (moved by another scheduler) is not an error.
        """
        self.ensure_folder(folder)
        if seen:
            _ok(self.client.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Seen)"), "STORE \\Seen")
        if "MOVE" in self.client.capabilities:
            _ok(self.client.uid("MOVE", str(uid), _quote(folder)), f"MOVE to {folder}")
            return
        _ok(self.client.uid("COPY", str(uid), _quote(folder)), f"COPY to {folder}")
        _ok(self.client.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)"), "STORE \\Deleted")
        if "UIDPLUS" in self.client.capabilities:
            _ok(self.client.uid("EXPUNGE", str(uid)), "UID EXPUNGE")
        else:
            _ok(self.client.expunge(), "EXPUNGE")

    def find(self, message_id: str) -> int | None:
        """The UID of a message by its Message-ID in the selected folder (UIDVALIDITY moved)."""
        if message_id.startswith("sha256:") or '"' in message_id:
            return None
        data = _ok(self.client.uid("SEARCH", "HEADER", "Message-ID", _quote(message_id)), "SEARCH")
        uids = (data[0] or b"").split() if data else []
        return int(uids[0]) if uids else None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.logout()
        with contextlib.suppress(Exception):
            self.client.shutdown()


# --- the poller ---------------------------------------------------------------------------


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
        official_run_kind: str = RunKind.OFFICIAL_INGESTION.value,
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
        with read_session(self.engine) as session:
            rows = session.execute(
                select(MailMessage, IngestionRun.status)
                .outerjoin(IngestionRun, IngestionRun.run_id == MailMessage.run_id)
                .where(
                    MailMessage.feed_id == feed.id,
                    MailMessage.state.in_(("queued", "rejecting")),
                )
                .order_by(MailMessage.claimed_at)
            ).all()
            plans: list[tuple[MailMessage, str, str | None]] = []
            for row, status in rows:
                if row.state == "rejecting":
                    plans.append((row, "rejected", row.reason))
                elif status is None:
                    plans.append((row, "retry", "its run no longer exists"))
                elif status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
                    plans.append((row, "processed", None))
                elif status == RunStatus.CANCELLED:
                    plans.append((row, "rejected", f"run {row.run_id} was cancelled"))
                elif status == RunStatus.FAILED:
                    assert row.run_id is not None
                    summary = error_summary(session, row.run_id) or "no error recorded"
                    code = summary.split(":", 1)[0].strip()
                    reason = f"run {row.run_id} failed: {summary}"
                    if code in PERMANENT_CODES or row.attempts >= MAX_ATTEMPTS:
                        plans.append((row, "rejected", reason))
                    else:
                        plans.append((row, "retry", reason))
        settled = 0
        for row, target, why in plans:
            if target == "retry":
                self._transition(row, "retry", why, event=None)
                continue
            uid = self._current_uid(box, row)
            if uid is not None:
                if target == "processed":
                    box.move(uid, options.processed_folder, seen=True)
                else:
                    box.move(uid, options.rejected_folder, seen=False)
            if target == "processed":
                note = f"message moved to {options.processed_folder}"
                event = ("mail_processed", EventStatus.SUCCESS, note)
            else:
                note = f"message moved to {options.rejected_folder}: {why}"
                event = ("mail_rejected", EventStatus.WARN, note)
            if self._transition(row, target, why, event=event):
                settled += 1
        return settled

    @staticmethod
    def _current_uid(box: Mailbox, row: MailMessage) -> int | None:
        if row.uid is not None and row.uidvalidity == box.uidvalidity:
            return row.uid
        return box.find(row.message_id)

    def _transition(
        self,
        row: MailMessage,
        target: str,
        reason: str | None,
        *,
        event: tuple[str, EventStatus, str] | None,
    ) -> bool:
        """Compare-and-set a claim's state; the run's event is written only by the winner."""
        now = utcnow()
        with write_session(self.engine) as session:
            result = session.execute(
                update(MailMessage)
                .where(MailMessage.id == row.id, MailMessage.state == row.state)
                .values(
                    state=target,
                    reason=reason,
                    settled_at=None if target == "retry" else now,
                )
            )
            if getattr(result, "rowcount", 0) != 1:
                return False
            if event is not None and row.run_id is not None:
                run = session.get(IngestionRun, row.run_id)
                if run is not None:
                    lifecycle.record_event(
                        session, run.run_id, run.trace_id, event[0], event[1], message=event[2]
                    )
        log.info("mail_settled", message_id=row.message_id, state=target, run_id=str(row.run_id))
        return True

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
        known = self._known(feed.id, [h.message_id for h in headers if h.message_id])
        taken = duplicates = rejected = 0
        notes: list[str] = []
        for header in headers:
            if taken + rejected >= self.max_messages:
                notes.append("more messages wait for the next poll")
                break
            claim = known.get(message_key(header.message_id, None)) if header.message_id else None
            if claim is not None and claim.state != "retry":
                if (claim.uidvalidity, claim.uid) != (box.uidvalidity, header.uid):
                    # Another copy of a message already claimed: never ingested twice.
                    box.move(header.uid, options.processed_folder, seen=True)
                    duplicates += 1
                continue
            outcome = self._take(box, feed, options, header, result)
            if outcome == "queued":
                taken += 1
            elif outcome == "rejected":
                rejected += 1
            elif outcome == "duplicate":
                duplicates += 1
        if rejected:
            notes.append(f"rejected {rejected} message(s): " + "; ".join(result.rejections))
        if duplicates:
            notes.append(f"{duplicates} duplicate message(s) moved to {options.processed_folder}")
        if ignored:
            notes.append(f"{ignored} message(s) not matching sender or subject left unread")
        return taken, notes

    def _known(self, feed_id: uuid.UUID, message_ids: list[str]) -> dict[str, MailMessage]:
        keys = [message_key(m, None) for m in message_ids]
        if not keys:
            return {}
        found: dict[str, MailMessage] = {}
        with read_session(self.engine) as session:
            for start in range(0, len(keys), 500):
                for row in session.scalars(
                    select(MailMessage).where(
                        MailMessage.feed_id == feed_id,
                        MailMessage.message_id.in_(keys[start : start + 500]),
                    )
                ):
                    found[row.message_id] = row
        return found

    def _take(
        self,
        box: Mailbox,
        feed: FeedLike,
        options: ImapOptions,
        header: MessageHeader,
        result: MailPollResult,
    ) -> str:
        """Claim one message: ``queued``, ``rejected``, ``duplicate`` or ``lost``."""
        limit = self.settings.max_upload_bytes
        # Base64 grows a file by 4/3: a message this large cannot hold an acceptable file.
        if header.size > limit * 4 // 3 + (1 << 20):
            reason = f"message of {header.size} bytes is over the upload limit ({limit} bytes)"
            key = message_key(header.message_id, f"{box.uidvalidity}:{header.uid}".encode())
            return self._reject(box, feed, options, header, key, reason, result)
        raw = box.raw(header.uid)
        if raw is None:
            return "lost"  # gone since the search (another scheduler moved it)
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
            if not self._claim(session, feed, box, header, key, "queued", None):
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
            session.execute(
                update(MailMessage)
                .where(MailMessage.feed_id == feed.id, MailMessage.message_id == key)
                .values(run_id=run.run_id)
            )
            run_id = run.run_id
        result.run_ids.append(run_id)
        log.info("mail_run_queued", feed=feed.name, run_id=str(run_id), sender=header.sender)
        return "queued"

    def _claim(
        self,
        session: Session,
        feed: FeedLike,
        box: Mailbox,
        header: MessageHeader,
        key: str,
        state: str,
        reason: str | None,
    ) -> bool:
        """Insert the claim, or re-take a released (``retry``) one; True for exactly one taker.

        PostgreSQL: a concurrent insert of the same key waits for the first transaction and
        then gets no row back (``RETURNING`` decides, not ``rowcount``).
        """
        now = utcnow()
        table = MailMessage.__table__
        claim = upsert.insert(session, MailMessage).values(
            id=uuid.uuid4(),
            feed_id=feed.id,
            message_id=key,
            state=state,
            uidvalidity=box.uidvalidity,
            uid=header.uid,
            sender=header.sender[:255] or None,
            subject=header.subject[:2000] or None,
            reason=reason,
            attempts=1,
            claimed_at=now,
        )
        stmt = claim.on_conflict_do_update(
            index_elements=["feed_id", "message_id"],
            set_={
                "state": claim.excluded.state,
                "uidvalidity": claim.excluded.uidvalidity,
                "uid": claim.excluded.uid,
                "reason": claim.excluded.reason,
                "attempts": table.c.attempts + 1,
                "claimed_at": claim.excluded.claimed_at,
                "run_id": None,
                "settled_at": None,
            },
            where=table.c.state == "retry",
        ).returning(table.c.id)
        return session.execute(stmt).first() is not None

    def _lost(
        self, box: Mailbox, feed: FeedLike, options: ImapOptions, header: MessageHeader, key: str
    ) -> str:
        """Another claim holds the key: another copy (moved away) or another scheduler's."""
        with read_session(self.engine) as session:
            row = session.scalar(
                select(MailMessage).where(
                    MailMessage.feed_id == feed.id, MailMessage.message_id == key
                )
            )
        if row is not None and (row.uidvalidity, row.uid) != (box.uidvalidity, header.uid):
            box.move(header.uid, options.processed_folder, seen=True)
            return "duplicate"
        return "lost"

    def _reject(
        self,
        box: Mailbox,
        feed: FeedLike,
        options: ImapOptions,
        header: MessageHeader,
        key: str,
        reason: str,
        result: MailPollResult,
    ) -> str:
        """A message with nothing to ingest: claimed as ``rejecting``, moved, then ``rejected``."""
        with write_session(self.engine) as session:
            if not self._claim(session, feed, box, header, key, "rejecting", reason):
                return self._lost(box, feed, options, header, key)
        box.move(header.uid, options.rejected_folder, seen=False)
        with write_session(self.engine) as session:
            session.execute(
                update(MailMessage)
                .where(
                    MailMessage.feed_id == feed.id,
                    MailMessage.message_id == key,
                    MailMessage.state == "rejecting",
                )
                .values(state="rejected", settled_at=utcnow())
            )
        result.rejections.append(f"message {key} from {header.sender or '?'}: {reason}")
        log.info("mail_rejected", feed=feed.name, message_id=key, reason=reason)
        return "rejected"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


__all__ = [
    "MAX_ATTEMPTS",
    "PERMANENT_CODES",
    "ImapOptions",
    "MailConfigError",
    "MailPollResult",
    "MailPoller",
    "connect",
    "csv_attachment",
    "message_key",
    "parse_options",
    "resolve_password",
    "sender_allowed",
]
