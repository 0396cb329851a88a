"""An uploaded file, copied in chunks to a private temporary folder with a size limit, and hashed.

The multipart parser has already spooled the part to a temporary file (at most one chunk in memory);
this copies it under its own (cleaned) file name, because ingestion records the file name and detects
the format from its extension, exactly as for ``marketplace ingest PATH``. Larger than the limit: 413 and
nothing kept.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from marketplace.api.errors import PayloadTooLargeError

__all__ = ["SavedUpload", "clean_filename", "saved_upload"]

_UNSAFE = re.compile(r"[^\w.\- ]", re.ASCII)
_MAX_NAME = 200


@dataclass(frozen=True)
class SavedUpload:
    path: Path
    filename: str
    size: int
    sha256: str


def clean_filename(name: str | None, default: str = "upload.jsonl") -> str:
    """The last component of a client's file name, limited to letters, digits, ``.``, ``-``, ``_`` and
    spaces (anything else becomes ``_``), never hidden or empty; ``default`` when nothing is left."""
    raw = PureWindowsPath(PurePosixPath(name or "").name).name.strip()
    safe = _UNSAFE.sub("_", raw).strip(" .")
    if not safe or safe.startswith("."):
        return default
    if len(safe) > _MAX_NAME:
        stem, dot, ext = safe.rpartition(".")
        safe = (stem[: _MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) < 20 else safe[:_MAX_NAME]
    return safe


@contextmanager
def saved_upload(source: BinaryIO, filename: str | None, *, max_bytes: int, chunk_bytes: int,
                 what: str = "file") -> Iterator[SavedUpload]:
    """Copy ``source`` into a new private temporary folder as ``clean_filename(filename)``; the folder is
    removed when the block ends. PayloadTooLargeError past ``max_bytes``. An empty file is kept: ingestion
    refuses it with its own reason, as for the CLI."""
    folder = Path(tempfile.mkdtemp(prefix="mkt-upload-"))
    try:
        target = folder / clean_filename(filename)
        digest = hashlib.sha256()
        size = 0
        with target.open("wb") as out:
            while chunk := source.read(chunk_bytes):
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLargeError(f"the {what} is larger than {max_bytes} bytes, the limit of this "
                                               "service; split it into smaller files")
                digest.update(chunk)
                out.write(chunk)
        yield SavedUpload(target, target.name, size, digest.hexdigest())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
