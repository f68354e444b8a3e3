"""Upload size limits. Files above FILE_UPLOAD_MAX_MEMORY_SIZE stream to a temporary file (Django's own handlers);
`UploadLimitHandler`, first in FILE_UPLOAD_HANDLERS, stops reading a multipart body larger than
BACKFORTH_MAX_UPLOAD_MB before any of it is stored, and marks the request so that the view answers with a message
(`upload_refusal`) instead of a missing file. Views with a smaller limit (seed imports) check `upload.size` first."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest

TOO_LARGE_ATTR = "backforth_upload_too_large"


def limit_bytes(megabytes: float) -> int:
    return int(megabytes * 2**20)


def describe_limit(megabytes: float) -> str:
    return f"{megabytes:g} MB"


def describe_size(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 // 10 else f"{size / 2**10:.1f} KB"


class UploadLimitHandler(FileUploadHandler):
    """Refuses a multipart body over BACKFORTH_MAX_UPLOAD_MB: the rest of the body is read and dropped, never
    stored, and the request is marked (`upload_refusal` turns the mark into a message)."""

    too_large = False

    def handle_raw_input(
        self, input_data: Any, META: Any, content_length: int, boundary: Any, encoding: str | None = None
    ) -> None:
        self.too_large = content_length > limit_bytes(settings.BACKFORTH_MAX_UPLOAD_MB)

    def _refuse(self) -> None:
        if self.request is not None:
            setattr(self.request, TOO_LARGE_ATTR, True)
        raise StopUpload(connection_reset=False)

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        if self.too_large:
            self._refuse()
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > limit_bytes(settings.BACKFORTH_MAX_UPLOAD_MB):
            self._refuse()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers store the file


def upload_refusal(request: HttpRequest, uploads: list[Any], *, megabytes: float) -> str | None:
    """The message refusing these uploads when the request or one file is over `megabytes`, else None."""
    limit = describe_limit(min(megabytes, settings.BACKFORTH_MAX_UPLOAD_MB))
    if getattr(request, TOO_LARGE_ATTR, False):
        return f"The upload is larger than the {limit} limit. Nothing was imported."
    for upload in uploads:
        if upload.size > limit_bytes(megabytes):
            return f"{upload.name} is {describe_size(upload.size)}, over the {limit} limit. Nothing was imported."
    return None
