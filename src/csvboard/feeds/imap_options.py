"""An imap feed's options: where the mailbox is, how to sign in, which mail to take.

Checked when an admin saves the feed (``feeds.service``) and again by the poller before each
poll (``feeds/mail.py``). The password is never an option: it comes from an environment
variable or a file, read only when the poller signs in.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from csvboard.runs.vocabulary import RunKind

LOOPBACK_NAMES = frozenset({"localhost"})
_MAILBOX_RE = re.compile(r"^[\x20-\x7e]{1,200}$")


class MailConfigError(Exception):
    """The feed's settings cannot work (bad options, no password): shown as its error."""


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ImapOptions(BaseModel):
    """An imap feed's ``options`` (the password itself is never among them).

    ``tls``: ``implicit`` (IMAPS, port 993), ``starttls`` (port 143, upgraded before login) or
    ``none`` (plain text: only for a server on this machine). ``allowed_senders``: addresses
    or ``@domain`` entries, case-insensitive; empty means any sender. ``subject_pattern``: a
    regular expression searched in the decoded subject. ``poll_seconds``: how often to poll
    when the feed has no cron schedule.
    """

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: Literal["implicit", "starttls", "none"] = "implicit"
    ca_file: str | None = Field(default=None, max_length=4096)
    user: str = Field(min_length=1, max_length=255)
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    password_file: str | None = Field(default=None, min_length=1, max_length=4096)
    folder: str = "INBOX"
    processed_folder: str = "csvboard-processed"
    rejected_folder: str = "csvboard-rejected"
    subject_pattern: str | None = Field(default=None, max_length=500)
    allowed_senders: list[str] = Field(default_factory=list, max_length=200)
    poll_seconds: float = Field(default=60.0, ge=0, le=86400)
    run_kind: str | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ch.isspace() or ch in "/@" for ch in value):
            raise ValueError("host must be a host name or an IP address")
        return value

    @field_validator("folder", "processed_folder", "rejected_folder")
    @classmethod
    def _mailbox(cls, value: str) -> str:
        if not _MAILBOX_RE.match(value) or '"' in value or "\\" in value:
            raise ValueError("a folder name is printable ASCII without quotes or backslashes")
        return value

    @field_validator("subject_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("allowed_senders")
    @classmethod
    def _senders(cls, value: list[str]) -> list[str]:
        cleaned = []
        for entry in value:
            entry = entry.strip().lower()
            if not re.fullmatch(r"[^@\s]*@[^@\s]+", entry):
                raise ValueError(f"{entry!r} is neither an address nor an @domain")
            cleaned.append(entry)
        return cleaned

    @field_validator("run_kind")
    @classmethod
    def _run_kind(cls, value: str | None) -> str | None:
        if value is not None and value not in {k.value for k in RunKind}:
            raise ValueError("run_kind must be one of " + ", ".join(k.value for k in RunKind))
        return value

    @model_validator(mode="after")
    def _whole(self) -> ImapOptions:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env or password_file")
        if self.tls == "none" and not _is_loopback(self.host):
            raise ValueError("tls none (plain text) is allowed only for 127.0.0.1 or localhost")
        if len({self.folder, self.processed_folder, self.rejected_folder}) != 3:
            raise ValueError("folder, processed_folder and rejected_folder must differ")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.tls == "implicit" else 143)

    def display_location(self) -> str:
        """What the feed's ``location`` shows: ``imap://user@host:port/folder``."""
        return f"imap://{self.user}@{self.host}:{self.effective_port}/{self.folder}"


def parse_options(options: dict[str, Any] | None) -> ImapOptions:
    """Validate an imap feed's options; :class:`MailConfigError` says what is wrong.

    A ``password`` key is refused outright: the password must come from the environment or a
    file, so that it is never stored in the database.
    """
    if not isinstance(options, dict):
        raise MailConfigError("an imap feed needs options (host, user, password_env, ...)")
    if "password" in options:
        raise MailConfigError(
            "options must not contain the password: name an environment variable "
            "(password_env) or a file (password_file) that holds it"
        )
    try:
        return ImapOptions.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            (".".join(str(p) for p in err["loc"]) + ": " if err["loc"] else "") + err["msg"]
            for err in exc.errors(include_url=False, include_input=False)
        )
        raise MailConfigError(f"invalid imap options: {problems}") from None


def resolve_password(options: ImapOptions) -> str:
    """Read the password from its environment variable or file (never log the result)."""
    if options.password_env is not None:
        value = os.environ.get(options.password_env)
        if not value:
            raise MailConfigError(f"environment variable {options.password_env} is not set")
        return value
    assert options.password_file is not None
    try:
        value = Path(options.password_file).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise MailConfigError(
            f"cannot read password file {options.password_file}: {exc.strerror or exc}"
        ) from None
    if not value:
        raise MailConfigError(f"password file {options.password_file} is empty")
    return value
