"""The IMAP poller against Debian's dovecot, started by the test on a loopback port with a
passwd-file and a maildir in a temporary folder."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient  # type: ignore[import-untyped]
from pydantic import SecretStr
from sqlmodel import func, select

from intake.imap import ImapPoller
from intake.processor import IntakeProcessor
from models.enums import InboundState
from models.tables import Dispute, ImapCursor, InboundMessage
from tests.conftest import Stack
from tests.dns_stub import dns_stub
from tests.intake.test_intake_authentication import INCOMPLETE, dkim_key, signed
from tests.intake_harness import CLAIMANT, filing_mail, mail
from tests.processes import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "intake", "intake-password"


@pytest.fixture
def dovecot() -> Iterator[int]:
    if not os.path.exists(DOVECOT):
        reason = "Debian's dovecot-imapd is not installed (make test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    # Not under pytest's temporary folder: that one is private to root, and dovecot's own
    # processes (running as its users) must reach the password file and the maildir.
    root = Path(tempfile.mkdtemp(prefix="accord-dovecot-"))
    root.chmod(0o755)
    (root / "mail").mkdir(parents=True)
    (root / "home").mkdir()
    owner = pwd.getpwnam("dovecot")
    # imap-login refuses to run as root, and mail processes want a non-root owner: run them
    # as Debian's dovecot users and give the mail folders to them.
    for folder in (root / "mail", root / "home"):
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    config = root / "dovecot.conf"
    config.write_text(
        f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {owner.pw_uid}
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={root}/home/%u
}}
mail_location = maildir:{root}/mail/%u
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
    )
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(config)])
    try:
        for _ in range(50):
            try:
                with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=1) as probe:
                    probe.login(USER, PASSWORD)
                break
            except Exception:  # not listening yet
                if process.poll() is not None:
                    log = root / "dovecot.log"
                    pytest.fail(
                        f"dovecot exited: {log.read_text()[-2000:] if log.exists() else ''}"
                    )
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def deliver(port: int, *messages: bytes) -> None:
    with IMAPClient("127.0.0.1", port=port, ssl=False) as imap:
        imap.login(USER, PASSWORD)
        for raw in messages:
            imap.append("INBOX", raw)


def folder_count(port: int, folder: str) -> int:
    with IMAPClient("127.0.0.1", port=port, ssl=False) as imap:
        imap.login(USER, PASSWORD)
        folder = ImapPoller._server_path(imap, folder)
        if not imap.folder_exists(folder):
            return 0
        imap.select_folder(folder, readonly=True)
        return len(imap.search(["ALL"]))


def poller_for(stack: Stack, port: int) -> ImapPoller:
    s = stack.settings
    s.intake_imap_host, s.intake_imap_port, s.intake_imap_ssl = "127.0.0.1", port, False
    s.intake_imap_username, s.intake_imap_password = USER, SecretStr(PASSWORD)
    return ImapPoller(IntakeProcessor(stack.services, stack.client), s)


def inbound(stack: Stack) -> list[InboundMessage]:
    with stack.sessions.read() as session:
        return list(session.exec(select(InboundMessage).order_by(InboundMessage.id)).all())  # type: ignore[arg-type]


async def test_the_poller_stores_moves_and_remembers_where_it_stopped(
    stack: Stack, dovecot: int
) -> None:
    poller = poller_for(stack, dovecot)
    deliver(dovecot, bytes(filing_mail()), bytes(mail("nora@northwind.example", "Hello", "Hi")))
    stored = await asyncio.to_thread(poller.poll_once)
    assert len(stored) == 2
    assert folder_count(dovecot, "INBOX") == 0
    assert folder_count(dovecot, "Accord/Processed") == 2
    await poller.processor.process_pending()
    states = [row.state for row in inbound(stack)]
    assert states == [InboundState.FILED, InboundState.ANSWERED]
    assert all(row.source == "imap" for row in inbound(stack))
    with stack.sessions.read() as session:
        cursor = session.get(ImapCursor, poller.mailbox)
        assert cursor is not None and cursor.last_uid == 2
        assert session.exec(select(func.count()).select_from(Dispute)).one() == 1
    # Nothing new: nothing fetched.
    assert await asyncio.to_thread(poller.poll_once) == []


async def test_a_crash_after_storing_and_before_moving_stores_nothing_twice(
    stack: Stack, dovecot: int
) -> None:
    poller = poller_for(stack, dovecot)
    message = bytes(filing_mail())
    deliver(dovecot, message)
    # The poller stored the message, then died before moving it or advancing its cursor.
    poller.processor.store(message, source="imap")
    stored = await asyncio.to_thread(poller.poll_once)
    assert len(stored) == 1 and len(inbound(stack)) == 1
    assert folder_count(dovecot, "INBOX") == 0
    await poller.processor.process_pending()
    with stack.sessions.read() as session:
        assert session.exec(select(func.count()).select_from(Dispute)).one() == 1


async def test_a_new_uidvalidity_starts_the_poller_over_without_duplicates(
    stack: Stack, dovecot: int
) -> None:
    poller = poller_for(stack, dovecot)
    deliver(dovecot, bytes(mail("nora@northwind.example", "First", "one")))
    await asyncio.to_thread(poller.poll_once)
    with stack.sessions.begin() as session:
        cursor = session.get(ImapCursor, poller.mailbox)
        assert cursor is not None
        cursor.uidvalidity, cursor.last_uid = 1, 999  # as if the folder had been rebuilt
        session.add(cursor)
    deliver(dovecot, bytes(mail("nora@northwind.example", "Second", "two")))
    stored = await asyncio.to_thread(poller.poll_once)
    assert len(stored) == 1
    assert len(inbound(stack)) == 2  # the second message once, the first not again


async def test_polled_mail_is_trusted_on_an_aligned_signature_and_held_without_one(
    stack: Stack, dovecot: int
) -> None:
    """No SMTP session, so no SPF: Accord verifying senders itself trusts polled mail on a DKIM
    signature of the From domain, and holds (never answers) the rest."""
    with dns_stub() as dns:
        private, record = dkim_key()
        dns.txt("sel._domainkey.northwind.example", record)
        dns.txt("northwind.example", "v=spf1 ip4:127.0.0.0/8 -all")  # no use without a peer
        s = stack.settings
        s.intake_verify, s.intake_dns_servers = "self", [dns.address]
        s.intake_require_authentication = True
        poller = poller_for(stack, dovecot)
        genuine = signed(mail(CLAIMANT, "Signed", INCOMPLETE), "northwind.example", private)
        deliver(dovecot, genuine, bytes(mail(CLAIMANT, "Unsigned", INCOMPLETE)))
        await asyncio.to_thread(poller.poll_once)
        await poller.processor.process_pending()
    signed_row, unsigned_row = inbound(stack)
    assert signed_row.state is InboundState.ANSWERED, signed_row.reason
    assert signed_row.authentication["spf"] == "none"
    assert signed_row.authentication["dkim"] == "pass"
    assert unsigned_row.state is InboundState.QUARANTINED, unsigned_row.reason
    assert "not authenticated as northwind.example" in (unsigned_row.reason or "")
    await stack.mail.wait_for(CLAIMANT, "Re: Signed")
    assert [str(m["Subject"]) for m in stack.mail.to(CLAIMANT)] == ["Re: Signed"]
