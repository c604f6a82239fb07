"""Evidence uploads: checked against the settings' limits and stored by content hash before the
workflow is asked to attach them."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from fastapi.responses import Response
from sqlalchemy import delete, exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from accord.db import SessionFactory
from accord.settings import Settings
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


class CheckedMultiPartParser(MultiPartParser):
    """Starlette's multipart parser, checking each file as its part arrives: the number of
    files, the declared type of those in `files_field`, and the size of every one. Files stay in
    memory (the spool is as large as the largest file allowed), so nothing of an upload is
    written to disk before it is accepted and stored.

    At a fault it either stops (`collect` false: UploadProblem, nothing more of the body is
    read, and the parser closes what it holds), or, for a page that shows the form again with
    everything typed, it notes the problem, drops the rest of that file's bytes as they come
    and leaves the file out of the form."""

    def __init__(
        self,
        headers: Headers,
        stream: AsyncGenerator[bytes, None],
        settings: Settings,
        files_field: str,
        *,
        collect: bool,
    ) -> None:
        super().__init__(headers, stream, max_files=settings.upload_max_files + 1)
        self.settings = settings
        self.files_field = files_field
        self.collect = collect
        self.spool_max_size = settings.upload_max_bytes + 1
        self.problems: list[UploadProblem] = []
        self.dropped: list[UploadFile] = []
        self._file_index: dict[str, int] = {}
        self._file_bytes = 0
        self._refused = False

    def _where(self) -> str:
        """The file at fault as the errors name it: `files[2]`, by its place in its field."""
        name = self._current_part.field_name
        return f"{name}[{self._file_index.get(name, 0)}]"

    def _fault(self, problem: UploadProblem) -> None:
        if not self.collect:
            raise problem
        self.problems.append(problem)
        self._refused = True

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._refused = False

    def on_headers_finished(self) -> None:
        limit = self.settings.upload_max_files
        part = self._current_part
        super().on_headers_finished()
        if part.file is None:
            return
        self._file_index[part.field_name] = self._file_index.get(part.field_name, -1) + 1
        self._file_bytes = 0
        if self._current_files > limit:
            self._fault(
                UploadProblem(
                    self.files_field, f"more than {limit} files; at most {limit} at a time"
                )
            )
        elif part.field_name == self.files_field and part.file.filename:
            try:
                check_type(
                    self.settings,
                    part.file.filename,
                    part.file.headers.get("content-type", ""),
                    self._where(),
                )
            except UploadProblem as problem:
                self._fault(problem)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is not None:
            self._file_bytes += end - start
            if self._refused:
                return  # dropped as it comes: a refused file is never kept
            limit = self.settings.upload_max_bytes
            if self._file_bytes > limit and not self.collect:
                raise UploadProblem(
                    self._where(),
                    f"{part.file.filename} is too large; the limit is {limit:,} bytes",
                )
            if self._file_bytes > limit:
                self._refused = True  # said at the part's end, with its whole size
                return
        super().on_part_data(data, start, end)

    def on_part_end(self) -> None:
        part = self._current_part
        super().on_part_end()
        if part.file is None:
            return
        limit = self.settings.upload_max_bytes
        if self._file_bytes > limit:
            self.problems.append(
                UploadProblem(
                    self._where(),
                    f"{part.file.filename} is {self._file_bytes:,} bytes; the limit is {limit:,}",
                )
            )
            self._refused = True
        if self._refused:
            self.items.pop()  # the file this part added
            self.dropped.append(part.file)


async def read_upload_form(
    headers: Headers,
    stream: AsyncGenerator[bytes, None],
    settings: Settings,
    files_field: str,
    *,
    collect: bool = False,
) -> tuple[FormData, list[UploadProblem]]:
    """A multipart form, its files checked as they arrive (CheckedMultiPartParser), and the
    problems found (with `collect`; else the first is raised). Call it only once the request is
    authorised. A body that is not a readable multipart form: UploadProblem on `form`."""
    parser = CheckedMultiPartParser(headers, stream, settings, files_field, collect=collect)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise UploadProblem("form", f"the form could not be read: {exc}") from None
    finally:
        for file in parser.dropped:
            await file.close()
    return form, parser.problems


async def uploads_in(form: FormData, name: str) -> list[Upload]:
    """The files chosen in the form's field `name` (a file input left empty sends none)."""
    files: list[Upload] = []
    for item in form.getlist(name):
        if isinstance(item, UploadFile) and item.filename:
            files.append(
                Upload(
                    filename=item.filename,
                    content_type=item.content_type or "application/octet-stream",
                    data=await item.read(),
                )
            )
    return files


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


def download_response(filename: str, content_type: str, content: bytes) -> Response:
    from urllib.parse import quote

    # Always a download, never rendered inline, and never sniffed into something executable.
    return Response(
        content,
        media_type=content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
