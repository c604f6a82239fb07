"""Evidence: a file's checks against the settings' limits (its size, its declared type, its
first bytes), and its bytes stored once per content hash, before the dispute's workflow is asked
to attach it. Uploads through the web (web.evidence) and attachments by email (intake) alike."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy import delete, exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from accord.platform.db import SessionFactory
from accord.platform.settings import Settings
from models.enums import EvidenceVisibility
from models.payloads import EvidenceItem
from models.tables import Evidence, EvidenceBlob

# The first bytes each allowed binary type starts with; a file whose bytes disagree with its
# declared type is refused rather than stored under a misleading label.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (b"PK\x03\x04",),
}
_TEXT_TYPES = {"text/plain", "text/csv", "message/rfc822"}


@dataclass(frozen=True)
class UploadProblem(Exception):
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


def clean_filename(name: str) -> str:
    """The last path component, printable characters only; never empty."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] not in ("C",))
    base = base.strip().strip(".") or "upload"
    return base[:255]


def check_upload(settings: Settings, upload: Upload, index: int) -> None:
    where = f"files[{index}]"
    if not upload.data:
        raise UploadProblem(where, f"{upload.filename} is empty")
    if len(upload.data) > settings.upload_max_bytes:
        raise UploadProblem(
            where,
            f"{upload.filename} is {len(upload.data):,} bytes; the limit is "
            f"{settings.upload_max_bytes:,}",
        )
    check_type(settings, upload.filename, upload.content_type, where)
    content_type = upload.content_type.split(";")[0].strip().lower()
    magic = _MAGIC.get(content_type)
    if magic is not None and not upload.data.startswith(magic):
        raise UploadProblem(where, f"{upload.filename}: the content is not {content_type}")
    if content_type in _TEXT_TYPES:
        try:
            upload.data.decode("utf-8")
        except UnicodeDecodeError:
            raise UploadProblem(
                where, f"{upload.filename}: declared {content_type} but is not UTF-8 text"
            ) from None


def check_type(settings: Settings, filename: str, declared: str, where: str) -> None:
    content_type = declared.split(";")[0].strip().lower()
    if content_type not in settings.upload_allowed_types:
        raise UploadProblem(
            where,
            f"{filename}: type {content_type or 'unknown'} is not accepted "
            f"(accepted: {', '.join(settings.upload_allowed_types)})",
        )


def check_uploads(settings: Settings, uploads: list[Upload]) -> None:
    if len(uploads) > settings.upload_max_files:
        raise UploadProblem(
            "files", f"{len(uploads)} files; at most {settings.upload_max_files} at a time"
        )
    for i, upload in enumerate(uploads):
        check_upload(settings, upload, i)


def store(
    sessions: SessionFactory,
    upload: Upload,
    *,
    description: str,
    visibility: EvidenceVisibility,
    side_partner_id: str | None,
) -> EvidenceItem:
    """Store the bytes (once per hash) and describe the item for the workflow."""
    digest, _ = store_blob(sessions, upload)
    return describe(
        upload,
        digest,
        description=description,
        visibility=visibility,
        side_partner_id=side_partner_id,
    )


def describe(
    upload: Upload,
    digest: str,
    *,
    description: str,
    visibility: EvidenceVisibility,
    side_partner_id: str | None,
) -> EvidenceItem:
    """The evidence item the workflow is asked to attach, for bytes stored under `digest`."""
    return EvidenceItem(
        id=f"ev-{secrets.token_hex(8)}",
        filename=clean_filename(upload.filename),
        content_type=upload.content_type.split(";")[0].strip().lower(),
        size=len(upload.data),
        sha256=digest,
        description=description,
        visibility=visibility,
        side_partner_id=side_partner_id,
    )


def store_blob(sessions: SessionFactory, upload: Upload) -> tuple[str, bool]:
    """Store the bytes once per hash: their hash, and whether this call stored them."""
    digest = hashlib.sha256(upload.data).hexdigest()
    try:
        with sessions.begin() as session:
            if session.get(EvidenceBlob, digest) is not None:
                return digest, False
            session.add(EvidenceBlob(sha256=digest, size=len(upload.data), content=upload.data))
    except IntegrityError:
        # A concurrent upload of the same bytes stored the blob first; it is ours too, as
        # long as it is really there.
        with sessions.read() as session:
            if session.get(EvidenceBlob, digest) is None:
                raise
        return digest, False
    return digest, True


def discard_blob(sessions: SessionFactory, digest: str) -> None:
    """Remove bytes stored for an upload the dispute refused, unless an evidence item holds
    the same bytes (blobs are shared by content)."""
    with sessions.begin() as session:
        session.execute(
            delete(EvidenceBlob).where(
                col(EvidenceBlob.sha256) == digest,
                ~exists().where(col(Evidence.sha256) == digest),
            )
        )
