"""The IMAP client of mail feeds: sign in, read a folder's unseen headers, fetch, move.

Stdlib ``imaplib`` with a timeout on the connection and on every later socket operation. The
FETCH answers are parsed here (UID, RFC822.SIZE and the header fields the filters need), and a
message's claim key and first CSV attachment are computed here; what to do with a message is
the poller's business (``feeds/mail.py``). Any answer other than ``OK`` is a
:class:`MailServerError`: the messages stay where they are.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import imaplib
import math
import re
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

from csvboard.feeds.imap_options import ImapOptions

#: Messages whose headers are fetched per FETCH command.
HEADER_BATCH = 200
_FETCH_UID_RE = re.compile(rb"UID (\d+)")
_FETCH_SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")


class MailServerError(Exception):
    """The server could not be reached or did not answer as expected: messages stay put."""


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
    """Whether ``allowed`` (addresses or ``@domain``; empty: anyone) admits ``sender``."""
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


__all__ = [
    "HEADER_BATCH",
    "MailServerError",
    "Mailbox",
    "MessageHeader",
    "connect",
    "csv_attachment",
    "message_key",
    "sender_allowed",
]
