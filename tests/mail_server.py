"""A throwaway Dovecot IMAP server for tests (Debian's ``dovecot-imapd``).

``start_dovecot()`` writes a config into a fresh temporary directory — listening on 127.0.0.1
on two free ports (``port``: plain text with STARTTLS; ``tls_port``: implicit TLS) with a
self-signed certificate for ``127.0.0.1``/``localhost`` (``cert``, made with ``openssl``), one
static user from a passwd-file whose mail is a Maildir in the
same directory, ``base_dir``/``state_dir``/logs there too — and runs ``dovecot -F -c CONF`` as
a subprocess. ``MailServer.stop()`` ends it (and ``start()`` brings it back on the same port
and mailbox, for outage tests); ``close()`` stops it and removes the directory.

As root, Dovecot's own system users (``dovecot``, ``dovenull``, created by the package) run
its processes and own the Maildir; a non-root process runs everything as itself.
``scripts/test`` installs the package (``ensure_dovecot``) when ``/usr/sbin/dovecot`` is missing.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from support import free_port

DOVECOT = "/usr/sbin/dovecot"
USER = "feeds@example.test"
PASSWORD = "s3cret-imap-pass"


def _ids() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid) for this process."""
    if os.geteuid() == 0:
        internal = pwd.getpwnam("dovecot")
        login = "dovenull"
        return internal.pw_name, login, internal.pw_uid, internal.pw_gid
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, me.pw_name, me.pw_uid, os.getegid()


@dataclass
class MailServer:
    """A running (or stopped) Dovecot; ``port`` stays the same across stop/start."""

    root: Path
    port: int
    tls_port: int
    conf: Path
    cert: Path
    process: subprocess.Popen[bytes] | None = None
    user: str = USER
    password: str = PASSWORD
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "dovecot.log"

    def start(self, timeout: float = 15.0) -> None:
        """Start the server and wait until it answers an IMAP greeting."""
        if self.process is not None and self.process.poll() is None:
            return
        with (self.root / "dovecot.stderr").open("ab") as stderr:
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start: {self.diagnostics()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (its mailbox stays), and wait until the port refuses connections."""
        proc, self.process = self.process, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                return
            time.sleep(0.05)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def diagnostics(self) -> str:
        parts = []
        for name in ("dovecot.stderr", "dovecot.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(parts)

    def connect(self) -> imaplib.IMAP4:
        """A logged-in client (the caller logs out)."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(self.user, self.password)
        return client

    def reset(self) -> None:
        """Delete every folder but INBOX and empty INBOX (between tests)."""
        client = self.connect()
        try:
            _, data = client.list()
            for line in data or []:
                if not isinstance(line, bytes):
                    continue
                # (\\HasNoChildren) "/" name   -> name (possibly quoted)
                name = line.decode().split(') "/" ', 1)[-1].strip().strip('"')
                if name.upper() != "INBOX":
                    client.delete(f'"{name}"')
            _, count = client.select("INBOX")
            if count and count[0] and int(count[0]) > 0:
                client.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
                client.expunge()
        finally:
            with contextlib.suppress(Exception):
                client.logout()


def start_dovecot() -> MailServer:
    """Write a throwaway config and start Dovecot on 127.0.0.1 (see the module docstring)."""
    if not os.path.exists(DOVECOT):
        raise RuntimeError(f"{DOVECOT} is missing: apt-get install dovecot-imapd")
    root = Path(tempfile.mkdtemp(prefix="csvboard-dovecot-"))
    root.chmod(0o755)  # Dovecot's own users must reach the Maildir and the config
    internal, login, uid, gid = _ids()
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir()
    if os.geteuid() == 0:
        os.chown(root / "mail", uid, gid)
        os.chown(root / "state", uid, gid)
    group = grp.getgrgid(gid).gr_name
    passwd = root / "passwd"
    passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    port, tls_port = free_port(), free_port()
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    conf = root / "dovecot.conf"
    conf.write_text(
        f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:{root}/mail/%n
mail_home = {root}/mail/%n
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""
    )
    server = MailServer(root=root, port=port, tls_port=tls_port, conf=conf, cert=cert)
    atexit.register(server.close)  # if the caller never gets to close it
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server
