"""Dovecot on loopback as a real IMAP peer (../shared/RECIPES.md), offered as pytest fixtures.

Register with `pytest_plugins = ["tests.peers.dovecot"]` in the test module. Dovecot runs
unprivileged (its login, auth and mail processes as nobody:nogroup when started as root)
on 127.0.0.1 at a free high port, with a Maildir and plain-password users, in a temporary
directory owned by that user. Without the `dovecot` binary the tests are skipped, except
under CI=true, where that is a failure.

Fixtures: `dovecot_server` (one server per session), `dovecot` (a fresh account on it for
each test), `dovecot_without_idle_or_move` and `dovecot_with_tls` (session servers of
those kinds; take accounts with `add_user()`), `dovecot_factory` (servers of the test's
own, e.g. one that starts late).
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import itertools
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpdesk.config import ImapSettings

IN_CI = os.environ.get("CI", "").lower() == "true"
INSTALL_HINT = "apt-get install -y dovecot-imapd"
USERS_PER_SERVER = 100

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/log/dovecot.log
info_log_path = {dir}/log/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
mail_location = maildir:{dir}/mail/%u/Maildir
mail_privileged_group =
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={dir}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0600
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""


def find_dovecot() -> str:
    """The dovecot binary; skips the test without it (fails under CI=true)."""
    path = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        reason = f"dovecot is not installed ({INSTALL_HINT})"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _service_account() -> tuple[str, str]:
    """nobody:nogroup when we are root (Dovecot drops privileges to it), else ourselves."""
    if os.geteuid() == 0:
        return "nobody", "nogroup"
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


@dataclass(frozen=True)
class DovecotAccount:
    """One mail user on a running Dovecot, with a stdlib IMAP client for checking on it."""

    host: str
    port: int
    user: str
    password: str
    dir: Path

    def imap_settings(
        self, mailbox: str = "INBOX", processed_folder: str | None = None
    ) -> ImapSettings:
        """Settings for this account as `HELPDESK_IMAP_URL=imap://…?tls=off` would give."""
        return ImapSettings(
            host=self.host,
            port=self.port,
            security="off",
            username=self.user,
            password=self.password,
            mailbox=mailbox,
            processed_folder=processed_folder,
        )

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        """An independent IMAP connection (stdlib imaplib, not the code under test)."""
        connection = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            connection.login(self.user, self.password)
            yield connection
        finally:
            with contextlib.suppress(Exception):
                connection.logout()

    def append(self, raw: bytes, mailbox: str = "INBOX") -> None:
        with self.client() as imap:
            status, detail = imap.append(_quote(mailbox), None, None, raw)
            assert status == "OK", detail

    def flags(self, mailbox: str = "INBOX") -> dict[int, set[str]]:
        """UID → flags of every message in the mailbox."""
        with self.client() as imap:
            status, _ = imap.select(_quote(mailbox), readonly=True)
            assert status == "OK", f"cannot select {mailbox}"
            status, lines = imap.uid("FETCH", "1:*", "(UID FLAGS)")
        found: dict[int, set[str]] = {}
        for line in lines:
            if isinstance(line, bytes):
                match = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", line)
                if match:
                    found[int(match.group(1))] = set(match.group(2).decode().split())
        return found

    def seen(self, mailbox: str = "INBOX") -> list[int]:
        return sorted(uid for uid, flags in self.flags(mailbox).items() if "\\Seen" in flags)

    def recreate_mailbox(self, mailbox: str) -> None:
        """Delete and create it again, which gives it a new UIDVALIDITY."""
        with self.client() as imap:
            imap.delete(_quote(mailbox))
            status, detail = imap.create(_quote(mailbox))
            assert status == "OK", detail

    def message_file(self, uid: int, mailbox: str = "INBOX") -> Path:
        """The Maildir file holding `uid` (found through dovecot-uidlist)."""
        maildir = self.dir / "mail" / self.user / "Maildir"
        if mailbox != "INBOX":
            maildir = maildir / f".{mailbox}"
        # dovecot-uidlist lines: "<uid> [<extension fields>] :<base file name>"
        for line in (maildir / "dovecot-uidlist").read_text().splitlines()[1:]:
            match = re.match(r"^(\d+) (?:\S+ )*:(\S+)$", line)
            if match and int(match.group(1)) == uid:
                for folder in ("cur", "new"):
                    for candidate in (maildir / folder).glob(f"{match.group(2)}*"):
                        return candidate
        raise FileNotFoundError(f"UID {uid} in {mailbox}")


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DovecotServer:
    """One Dovecot instance with its own directory, ports and users."""

    _numbers = itertools.count(1)

    def __init__(
        self,
        *,
        port: int | None = None,
        capability: str | None = None,
        tls: bool = False,
    ) -> None:
        self.binary = find_dovecot()
        self.dir = Path(tempfile.mkdtemp(prefix="helpdesk-dovecot-"))
        self.port = port or free_port()
        self.tls_port = free_port() if tls else 0
        self.certificate = self.dir / "cert.pem" if tls else None
        self.user, self.group = _service_account()
        self._process: subprocess.Popen[bytes] | None = None
        for sub in ("run", "state", "log", "mail"):
            (self.dir / sub).mkdir()
        self._unused = self._write_users(USERS_PER_SERVER)
        if tls:
            self._make_certificate()
        self._write_config(capability)
        self._chown()

    @property
    def config(self) -> Path:
        return self.dir / "dovecot.conf"

    def add_user(self) -> DovecotAccount:
        """A plain-password user no test has had yet.

        Users are written before the start: Dovecot notices a changed users file only by its
        mtime in whole seconds, so a user added in the same second could not log in yet.
        """
        if not self._unused:
            self._unused = self._write_users(USERS_PER_SERVER)
            time.sleep(1.1)
        return self._unused.pop(0)

    def _write_users(self, count: int) -> list[DovecotAccount]:
        accounts = [
            DovecotAccount(
                host="127.0.0.1",
                port=self.port,
                user=f"support-{next(self._numbers)}@example.test",
                password=secrets.token_urlsafe(12),
                dir=self.dir,
            )
            for _ in range(count)
        ]
        with (self.dir / "users").open("a") as users:
            users.writelines(f"{a.user}:{{PLAIN}}{a.password}\n" for a in accounts)
        return accounts

    def start(self, timeout: float = 10) -> None:
        """Start in the foreground of a child process; return once it greets on its port."""
        self._process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "log" / "stderr.log").open("wb"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited {self._process.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=1
            ) as connection:
                if connection.recv(64).startswith(b"* OK"):
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"dovecot did not accept connections: {self.log_tail()}")

    def kick(self, account: DovecotAccount) -> None:
        """Drop the account's connections, as a server going away does (with `* BYE`)."""
        subprocess.run(
            ["doveadm", "-c", str(self.config), "kick", account.user],
            check=True,
            capture_output=True,
            timeout=10,
        )

    def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        # The master exits about a second after `doveadm stop`, but doveadm itself polls for
        # that in whole seconds; wait for the master and let a thread reap doveadm. (Clients'
        # imap processes outlive the master by about ten seconds before they say BYE.)
        stopper = subprocess.Popen(
            ["doveadm", "-c", str(self.config), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        threading.Thread(target=stopper.wait, daemon=True).start()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def remove(self) -> None:
        """Stop and delete the directory, in a thread the interpreter waits for at exit."""

        def stop_and_delete() -> None:
            self.stop()
            shutil.rmtree(self.dir, ignore_errors=True)

        threading.Thread(target=stop_and_delete, name=f"stop dovecot {self.port}").start()

    def log_tail(self) -> str:
        lines: list[str] = []
        for name in ("dovecot.log", "stderr.log"):
            path = self.dir / "log" / name
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()[-10:]
        return "\n".join(lines)

    def _write_config(self, capability: str | None) -> None:
        ssl = "ssl = no"
        if self.certificate is not None:
            ssl = f"ssl = yes\nssl_cert = <{self.certificate}\nssl_key = <{self.dir / 'key.pem'}"
        self.config.write_text(
            _CONFIG.format(
                dir=self.dir,
                user=self.user,
                group=self.group,
                port=self.port,
                tls_port=self.tls_port,
                ssl=ssl,
                capability=f"imap_capability = {capability}" if capability else "",
            )
        )

    def _make_certificate(self) -> None:
        """A self-signed certificate for 127.0.0.1; tests trust it explicitly."""
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(self.dir / "key.pem"), "-out", str(self.certificate)],
            check=True, capture_output=True,
        )  # fmt: skip

    def _chown(self) -> None:
        if os.geteuid() != 0:
            return
        shutil.chown(self.dir, self.user, self.group)
        for root, dirs, files in os.walk(self.dir):
            for name in dirs + files:
                shutil.chown(Path(root) / name, self.user, self.group)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """One Dovecot for the whole session; tests get their own users on it."""
    server = DovecotServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def dovecot_without_idle_or_move() -> Iterator[DovecotServer]:
    """A Dovecot that advertises neither IDLE nor MOVE, like many older servers."""
    server = DovecotServer(capability="IMAP4rev1 LITERAL+ UIDPLUS")
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def dovecot_with_tls() -> Iterator[DovecotServer]:
    """A Dovecot with STARTTLS and implicit TLS (`tls_port`) and a self-signed `certificate`."""
    server = DovecotServer(tls=True)
    server.start()
    yield server
    server.remove()


@pytest.fixture
def dovecot(dovecot_server: DovecotServer) -> DovecotAccount:
    """A fresh, empty mail account on the session's Dovecot: host/port/user/password/dir."""
    return dovecot_server.add_user()


@pytest.fixture
def dovecot_factory() -> Iterator[Callable[..., DovecotServer]]:
    """Makes servers of the test's own (not started); all are stopped and removed after it."""
    servers: list[DovecotServer] = []

    def make(**options: object) -> DovecotServer:
        server = DovecotServer(**options)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.remove()
