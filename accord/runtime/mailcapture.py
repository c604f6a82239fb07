"""A local SMTP server for the embedded stack: every message lands as a .eml file you can read."""

from __future__ import annotations

import itertools
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MailFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}-{next(self._counter):04d}.eml"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(envelope.content)
        tmp.rename(self.folder / name)  # readers never see half a message
        return "250 Message accepted for delivery"

    def messages(self) -> list[tuple[Path, EmailMessage]]:
        out = []
        for path in sorted(self.folder.glob("*.eml")):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            assert isinstance(message, EmailMessage)
            out.append((path, message))
        return out


def start_capture(folder: Path, host: str, port: int) -> Controller:
    controller = Controller(MailFolder(folder), hostname=host, port=port)
    controller.start()
    return controller
