"""The IMAP poller for a shared mailbox: each new message is stored, then moved to the
processed folder, then the cursor (UIDVALIDITY, last UID) advances. A crash between any two
steps fetches the message again next time, and storing it again is a no-op."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from imapclient import IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import IMAPClientError  # type: ignore[import-untyped]

from accord.platform.settings import Settings, revealed
from intake.processor import IntakeProcessor
from models.tables import ImapCursor

log = logging.getLogger("accord.intake.imap")


class ImapPoller:
    def __init__(self, processor: IntakeProcessor, settings: Settings) -> None:
        if not (settings.intake_imap_host and settings.intake_imap_username):
            raise ValueError("ACCORD_INTAKE_IMAP_HOST and ACCORD_INTAKE_IMAP_USERNAME: both needed")
        self.processor = processor
        self.settings = settings
        self.mailbox = (
            f"{settings.intake_imap_username}@{settings.intake_imap_host}/"
            f"{settings.intake_imap_folder}"
        )

    def _cursor(self) -> ImapCursor | None:
        with self.processor.sessions.read() as session:
            return session.get(ImapCursor, self.mailbox)

    def _advance(self, uidvalidity: int, uid: int) -> None:
        with self.processor.sessions.begin() as session:
            cursor = session.get(ImapCursor, self.mailbox) or ImapCursor(
                mailbox=self.mailbox, uidvalidity=uidvalidity, updated_at=datetime.now(UTC)
            )
            cursor.uidvalidity = uidvalidity
            cursor.last_uid = uid
            cursor.updated_at = datetime.now(UTC)
            session.add(cursor)

    def poll_once(self) -> list[int]:
        """Fetch and store what is new; returns the stored rows' ids (blocking: run it in a
        thread)."""
        s = self.settings
        password = revealed(s.intake_imap_password) or ""
        stored: list[int] = []
        with IMAPClient(s.intake_imap_host, port=s.intake_imap_port, ssl=s.intake_imap_ssl) as imap:
            imap.login(s.intake_imap_username, password)
            processed = self._server_path(imap, s.intake_imap_processed_folder)
            if not imap.folder_exists(processed):
                imap.create_folder(processed)
            selected = imap.select_folder(s.intake_imap_folder)
            uidvalidity = int(selected[b"UIDVALIDITY"])
            cursor = self._cursor()
            # A new UIDVALIDITY means the server renumbered the folder: start over (what was
            # stored before is recognised by its Message-ID and not stored twice).
            last = cursor.last_uid if cursor and cursor.uidvalidity == uidvalidity else 0
            uids = sorted(u for u in imap.search(["UID", f"{last + 1}:*"]) if u > last)
            move = b"MOVE" in imap.capabilities()
            for uid in uids:
                fetched = imap.fetch([uid], ["BODY.PEEK[]"]).get(uid, {})
                raw = fetched.get(b"BODY[]")
                if raw is None:
                    continue
                inbound_id, _ = self.processor.store(bytes(raw), source="imap")
                stored.append(inbound_id)
                if move:
                    imap.move([uid], processed)
                else:
                    imap.copy([uid], processed)
                    imap.delete_messages([uid])
                    imap.expunge([uid])
                self._advance(uidvalidity, uid)
        return stored

    @staticmethod
    def _server_path(imap: IMAPClient, path: str) -> str:
        """A folder path written with '/' in the server's own hierarchy separator."""
        try:
            personal = imap.namespace().personal
            delimiter = personal[0][1] if personal and personal[0][1] else "/"
        except IMAPClientError:
            delimiter = "/"
        if isinstance(delimiter, bytes):
            delimiter = delimiter.decode()
        return path.replace("/", delimiter)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await asyncio.to_thread(self.poll_once):
                    wake.set()
            except (OSError, IMAPClientError) as exc:
                log.warning("IMAP poll of %s failed: %s; retrying", self.mailbox, exc)
            try:
                await asyncio.wait_for(stop.wait(), self.settings.intake_imap_interval_seconds)
            except TimeoutError:
                continue
