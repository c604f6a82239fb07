"""Evidence uploads through the web: a multipart form read with each file checked as its part
arrives (accord.disputes.evidence says what is accepted), and a stored file sent back as a
download that is never rendered inline."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from urllib.parse import quote

from fastapi.responses import Response
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from accord.disputes.evidence import Upload, UploadProblem, check_type
from accord.platform.settings import Settings


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


def download_response(filename: str, content_type: str, content: bytes) -> Response:
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
