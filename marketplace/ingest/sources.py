"""Opening a provider file safely: format detection, size limits, gzip/zip with bomb and traversal guards.

:func:`open_source` does every file-level check that needs no parsing, hashes the bytes (the
submission's identity for idempotent re-ingest) and returns a :class:`Source`: the list of data
*members* to read (one for a plain file or a ``.gz``, one per data file of a ``.zip``, one per split of
a saved Hugging Face ``DatasetDict``). Members open lazily as bounded binary streams; decompressed
bytes are counted while they are read, so a lying archive header cannot get past the limits.

Decisions where the issue is silent:

- Format comes from ``fmt`` if given, else from the extension (``.gz`` stripped), else from the
  content (``PAR1`` -> Parquet, ``{`` -> JSONL). gzip/zip are recognised by their magic bytes
  whatever the extension.
- A UTF-8 byte-order mark is accepted (spreadsheet exports write one); UTF-16/UTF-32 marks are
  rejected (re-save as UTF-8) rather than guessed at.
- In a zip, directories, ``__MACOSX/`` and hidden files (``.DS_Store``) are skipped; any other member
  must be a data file. Members are read in sorted name order.
- Parquet inside ``.gz``/``.zip`` is spooled to an anonymous temporary file (Parquet needs random
  access), through the same byte counter.
"""

from __future__ import annotations

import enum
import gzip
import hashlib
import io
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from marketplace.errors import RejectedFileError
from marketplace.ingest.params import IngestLimits
from marketplace.ingest.reasons import FIX_HINTS, ReasonCode

__all__ = [
    "SUPPORTED_SUFFIXES",
    "FileFormat",
    "Member",
    "Source",
    "detect_text_problems",
    "list_ingestible",
    "open_source",
    "reject",
]

log = logging.getLogger(__name__)

_READ_CHUNK = 1 << 20
SNIFF_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
PARQUET_MAGIC = b"PAR1"
UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")
_ARCHIVE_SUFFIXES = {".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar", ".zst"}


class FileFormat(enum.StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    TSV = "tsv"
    PARQUET = "parquet"
    HF = "hf"


_EXTENSIONS: dict[str, FileFormat] = {
    ".jsonl": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".json": FileFormat.JSONL,
    ".csv": FileFormat.CSV,
    ".tsv": FileFormat.TSV,
    ".parquet": FileFormat.PARQUET,
    ".pq": FileFormat.PARQUET,
}
SUPPORTED_SUFFIXES = (*_EXTENSIONS, ".gz", ".zip")


def reject(code: ReasonCode, message: str, *, location: str | None = None) -> RejectedFileError:
    """A :class:`RejectedFileError` whose message ends with how to fix it."""
    return RejectedFileError(code.value, f"{message}; fix: {FIX_HINTS[code]}", location=location)


@dataclass(frozen=True)
class Member:
    """One data file of a submission.

    ``open_stream`` gives a fresh, guarded binary stream of the (decompressed) bytes; ``local_path`` is
    set where the bytes lie uncompressed on disk (plain files, HF folders) so Parquet/HF can map them.
    ``label`` prefixes record locations (``""`` for a plain file, ``"member a.jsonl: "`` in a zip).
    """

    name: str
    fmt: FileFormat
    label: str
    open_stream: Callable[[], BinaryIO]
    local_path: Path | None = None


@dataclass(frozen=True)
class Source:
    path: Path
    format_label: str  # stored in submissions.format: "jsonl", "csv+gz", "zip", "hf"
    content_sha256: str
    byte_size: int
    members: tuple[Member, ...]
    # Decompressed bytes read so far (gz/zip), shared by the members' streams.
    decompressed: _ByteBudget = field(repr=False, compare=False, default_factory=lambda: _ByteBudget(None, 0))


# ---------------------------------------------------------------------------------------------------
# Guarded decompression
# ---------------------------------------------------------------------------------------------------
class _ByteBudget:
    """Decompressed bytes of one source, summed over its members (shared by all their streams).

    A member may be opened more than once (sniffing, then reading); each member counts with the
    furthest any of its streams got, so re-reading never double-counts.
    """

    def __init__(self, limits: IngestLimits | None, compressed_total: int) -> None:
        self.limits = limits
        self.compressed_total = compressed_total
        self.total = 0
        self._per_member: dict[str, int] = {}

    def add(self, *, member_out: int, member_in: int, where: str) -> None:
        seen = self._per_member.get(where, 0)
        if member_out <= seen:
            return
        self._per_member[where] = member_out
        self.total += member_out - seen
        lim = self.limits
        if lim is None:
            return
        if self.total > lim.max_uncompressed_bytes:
            raise reject(
                ReasonCode.DECOMPRESSED_TOO_LARGE,
                f"more than {lim.max_uncompressed_bytes} bytes after decompression",
                location=where,
            )
        if member_out > lim.ratio_floor_bytes and member_out > lim.max_compression_ratio * max(member_in, 1):
            raise reject(
                ReasonCode.COMPRESSION_RATIO_TOO_HIGH,
                f"{member_out} bytes decompressed from {member_in} compressed bytes "
                f"(ratio above {lim.max_compression_ratio:g})",
                location=where,
            )


class _GuardedStream(io.RawIOBase):
    """Counts decompressed bytes against the budget and turns decoder errors into rejections."""

    def __init__(self, inner: BinaryIO, budget: _ByteBudget, *, compressed_bytes: int, where: str,
                 corrupt: ReasonCode) -> None:
        super().__init__()
        self._inner = inner
        self._budget = budget
        self._compressed = compressed_bytes
        self._where = where
        self._corrupt = corrupt
        self._out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self._inner.read(len(buffer))
        except RejectedFileError:
            raise
        except (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, OSError, ValueError) as exc:
            raise reject(self._corrupt, f"cannot decompress: {exc}", location=self._where) from exc
        n = len(data)
        buffer[:n] = data
        self._out += n
        self._budget.add(member_out=self._out, member_in=self._compressed, where=self._where)
        return n

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def _buffered(raw: io.RawIOBase) -> BinaryIO:
    return io.BufferedReader(raw, buffer_size=_READ_CHUNK)


# ---------------------------------------------------------------------------------------------------
# Detection helpers
# ---------------------------------------------------------------------------------------------------
def _format_from_name(name: str) -> FileFormat | None:
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    return _EXTENSIONS.get(os.path.splitext(lower)[1])


def detect_text_problems(head: bytes, fmt: FileFormat, where: str) -> None:
    """File-level checks on the first bytes of a text member (JSONL/CSV/TSV). Raises on a problem."""
    if not head:
        raise reject(ReasonCode.EMPTY_FILE, "the file is empty (0 bytes)", location=where)
    for bom in _UTF16_32_BOMS:
        if head.startswith(bom):
            raise reject(ReasonCode.UNSUPPORTED_ENCODING, "the file starts with a UTF-16/UTF-32 byte-order mark",
                         location=where)
    if head.startswith(PARQUET_MAGIC):
        raise reject(ReasonCode.FORMAT_MISMATCH, f"the content is Parquet, not {fmt.value}", location=where)
    if head.startswith(GZIP_MAGIC) or head.startswith(ZIP_MAGICS):
        raise reject(ReasonCode.NESTED_ARCHIVE, "an archive inside an archive", location=where)
    arr = np.frombuffer(head, dtype=np.uint8)
    # C0 controls other than \t \n \v \f \r, i.e. bytes that never occur in real text files.
    binary = np.count_nonzero((arr < 0x09) | ((arr > 0x0D) & (arr < 0x20)))
    undecodable = head.decode("utf-8", errors="replace").count("\ufffd")
    if binary > 0.1 * arr.size or undecodable > 0.1 * arr.size:
        nul_heavy = np.count_nonzero(arr == 0) > 0.3 * arr.size
        hint = " (many NUL bytes: UTF-16 without a byte-order mark?)" if nul_heavy else ""
        raise reject(ReasonCode.BINARY_CONTENT,
                     f"{binary} control bytes and {undecodable} undecodable bytes in the first {arr.size} bytes{hint}",
                     location=where)
    if fmt is FileFormat.JSONL:
        body = head[len(UTF8_BOM):] if head.startswith(UTF8_BOM) else head
        stripped = body.lstrip()
        if not stripped:
            return
        if stripped[:1] == b"[":
            raise reject(ReasonCode.JSON_ARRAY_NOT_JSONL, "the file is a JSON array, not JSON Lines", location=where)


def _sniff_format(head: bytes, where: str) -> FileFormat:
    if head.startswith(PARQUET_MAGIC):
        return FileFormat.PARQUET
    body = head[len(UTF8_BOM):] if head.startswith(UTF8_BOM) else head
    first = body.lstrip()[:1]
    if first == b"{":
        return FileFormat.JSONL
    if first == b"[":
        raise reject(ReasonCode.JSON_ARRAY_NOT_JSONL, "the file is a JSON array, not JSON Lines", location=where)
    raise reject(ReasonCode.UNKNOWN_FORMAT, "cannot tell the format from the name or the content", location=where)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_head(opener: Callable[[], BinaryIO], n: int = SNIFF_BYTES) -> bytes:
    with opener() as stream:
        return stream.read(n)


# ---------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------
def open_source(path: str | os.PathLike[str], fmt: FileFormat | str | None, limits: IngestLimits) -> Source:
    """Check and hash ``path`` and list its data members. Raises :class:`RejectedFileError`."""
    p = Path(path)
    where = p.name
    requested = _parse_format(fmt)
    try:
        st = p.lstat()
    except FileNotFoundError as exc:
        raise reject(ReasonCode.FILE_NOT_FOUND, f"no such file: {p}") from exc
    except OSError as exc:
        raise reject(ReasonCode.UNREADABLE_FILE, f"cannot stat {p}: {exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise reject(ReasonCode.SYMLINK_NOT_ALLOWED, f"{p} is a symbolic link")
    if stat.S_ISDIR(st.st_mode):
        return _open_hf_folder(p, requested, limits)
    if not stat.S_ISREG(st.st_mode):
        raise reject(ReasonCode.UNREADABLE_FILE, f"{p} is not a regular file")
    if requested is FileFormat.HF:
        raise reject(ReasonCode.FORMAT_MISMATCH, "--format hf needs a folder written by Dataset.save_to_disk")
    if st.st_size > limits.max_file_bytes:
        raise reject(ReasonCode.FILE_TOO_LARGE, f"{st.st_size} bytes > limit {limits.max_file_bytes}")
    if st.st_size == 0:
        raise reject(ReasonCode.EMPTY_FILE, "the file is empty (0 bytes)", location=where)
    try:
        with p.open("rb") as fh:
            magic = fh.read(8)
        sha = _hash_file(p)
    except OSError as exc:
        raise reject(ReasonCode.UNREADABLE_FILE, f"cannot read {p}: {exc}") from exc

    if magic.startswith(ZIP_MAGICS) or p.suffix.lower() == ".zip":
        members, budget = _zip_members(p, requested, limits, st.st_size)
        return Source(p, "zip", sha, st.st_size, members, budget)

    if magic.startswith(GZIP_MAGIC) or p.suffix.lower() == ".gz":
        if not magic.startswith(GZIP_MAGIC):
            raise reject(ReasonCode.GZIP_CORRUPT, "the name ends in .gz but the content is not gzip", location=where)
        budget = _ByteBudget(limits, st.st_size)

        def open_gz() -> BinaryIO:
            inner = gzip.open(p, "rb")  # noqa: SIM115 (closed by the guard that wraps it)
            return _buffered(_GuardedStream(inner, budget, compressed_bytes=st.st_size, where=where,  # type: ignore[arg-type]
                                            corrupt=ReasonCode.GZIP_CORRUPT))

        inner_fmt = requested or _format_from_name(p.name) or _sniff_format(_read_head(open_gz), where)
        member = _checked_member(p.name, inner_fmt, "", open_gz, None, limits)
        return Source(p, f"{inner_fmt.value}+gz", sha, st.st_size, (member,), budget)

    def open_plain() -> BinaryIO:
        return p.open("rb", buffering=_READ_CHUNK)

    fmt_ = requested or _format_from_name(p.name) or _sniff_format(magic, where)
    member = _checked_member(p.name, fmt_, "", open_plain, p, limits)
    return Source(p, fmt_.value, sha, st.st_size, (member,))


def _parse_format(fmt: FileFormat | str | None) -> FileFormat | None:
    if fmt is None or isinstance(fmt, FileFormat):
        return fmt
    try:
        return FileFormat(fmt.lower())
    except ValueError as exc:
        choices = ", ".join(f.value for f in FileFormat)
        raise reject(ReasonCode.UNKNOWN_FORMAT, f"unknown format {fmt!r} (choose one of {choices})") from exc


def _checked_member(name: str, fmt: FileFormat, label: str, opener: Callable[[], BinaryIO],
                    local_path: Path | None, limits: IngestLimits) -> Member:
    where = label.removesuffix(": ").removeprefix("member ") or name
    if fmt is FileFormat.PARQUET:
        if local_path is None:
            opener = _spooled(opener)
        _check_parquet_bytes(opener, where)
    else:
        detect_text_problems(_read_head(opener), fmt, where)
    return Member(name, fmt, label, opener, local_path)


def _check_parquet_bytes(opener: Callable[[], BinaryIO], where: str) -> None:
    """Parquet starts and ends with b'PAR1'; a missing footer means the file was cut short."""
    with opener() as stream:
        head = stream.read(4)
        size = stream.seek(0, io.SEEK_END)
        tail = b""
        if size >= 8:
            stream.seek(size - 4)
            tail = stream.read(4)
    if not head:
        raise reject(ReasonCode.EMPTY_FILE, "the file is empty (0 bytes)", location=where)
    if head != PARQUET_MAGIC:
        raise reject(ReasonCode.PARQUET_BAD_MAGIC, f"starts with {head!r}, not b'PAR1'", location=where)
    if tail != PARQUET_MAGIC:
        raise reject(ReasonCode.PARQUET_TRUNCATED, "no PAR1 footer at the end of the file", location=where)


def _spooled(opener: Callable[[], BinaryIO]) -> Callable[[], BinaryIO]:
    """Copy a (guarded) stream into an anonymous temp file once; Parquet needs random access."""
    cache: list[BinaryIO] = []

    def open_spooled() -> BinaryIO:
        if not cache:
            spool: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the member is read)
            with opener() as src:
                shutil.copyfileobj(src, spool, _READ_CHUNK)
            cache.append(spool)
        cache[0].seek(0)
        return _buffered(_NonClosing(cache[0]))

    return open_spooled


class _NonClosing(io.RawIOBase):
    """A view of the spooled file that leaves it open when closed (the next reader reuses it)."""

    def __init__(self, inner: BinaryIO) -> None:
        super().__init__()
        self._inner = inner

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()


# ---------------------------------------------------------------------------------------------------
# zip
# ---------------------------------------------------------------------------------------------------
_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_member_name(name: str) -> bool:
    if not name or name.startswith("/") or "\\" in name or "\x00" in name or _DRIVE.match(name):
        return True
    return any(part == ".." for part in name.split("/"))


def _zip_members(path: Path, requested: FileFormat | None, limits: IngestLimits,
                 compressed_size: int) -> tuple[tuple[Member, ...], _ByteBudget]:
    where = path.name
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise reject(ReasonCode.ZIP_CORRUPT, f"not a readable zip archive: {exc}", location=where) from exc
    if len(infos) > limits.max_archive_members:
        raise reject(ReasonCode.ZIP_TOO_MANY_MEMBERS,
                     f"{len(infos)} members > limit {limits.max_archive_members}", location=where)
    data: list[tuple[zipfile.ZipInfo, FileFormat]] = []
    declared_total = 0
    for info in infos:
        name = info.filename
        loc = f"member {name!r}"
        if _unsafe_member_name(name):
            raise reject(ReasonCode.ZIP_UNSAFE_PATH, f"unsafe member path {name!r} (absolute or with '..')",
                         location=where)
        mode = (info.external_attr >> 16) & 0o170000
        if mode == stat.S_IFLNK:
            raise reject(ReasonCode.ZIP_SYMLINK, f"member {name!r} is a symbolic link", location=where)
        if info.flag_bits & 0x1:
            raise reject(ReasonCode.ZIP_ENCRYPTED, f"member {name!r} is encrypted", location=where)
        if info.is_dir():
            continue
        base = name.rsplit("/", 1)[-1]
        if name.startswith("__MACOSX/") or base.startswith("."):
            log.info("skipping %s in %s", name, where)
            continue
        suffix = os.path.splitext(base.lower())[1]
        member_fmt = _EXTENSIONS.get(suffix)
        if member_fmt is None:
            code = ReasonCode.NESTED_ARCHIVE if suffix in _ARCHIVE_SUFFIXES else ReasonCode.ZIP_UNSUPPORTED_MEMBER
            raise reject(code, f"member {name!r} is not a .jsonl/.csv/.tsv/.parquet file", location=where)
        if requested is not None and member_fmt is not requested:
            raise reject(ReasonCode.FORMAT_MISMATCH, f"{loc} is {member_fmt.value}, not {requested.value}",
                         location=where)
        declared_total += info.file_size
        if (info.file_size > limits.ratio_floor_bytes
                and info.file_size > limits.max_compression_ratio * max(info.compress_size, 1)):
            raise reject(ReasonCode.COMPRESSION_RATIO_TOO_HIGH,
                         f"{loc} declares {info.file_size} bytes from {info.compress_size} compressed bytes "
                         f"(ratio above {limits.max_compression_ratio:g})", location=where)
        data.append((info, member_fmt))
    if declared_total > limits.max_uncompressed_bytes:
        raise reject(ReasonCode.DECOMPRESSED_TOO_LARGE,
                     f"members declare {declared_total} bytes > limit {limits.max_uncompressed_bytes}",
                     location=where)
    if not data:
        raise reject(ReasonCode.ZIP_NO_DATA_MEMBERS, "the archive holds no data file", location=where)
    budget = _ByteBudget(limits, compressed_size)
    members = []
    for info, member_fmt in sorted(data, key=lambda d: d[0].filename):
        label = f"member {info.filename}: "
        members.append(_checked_member(info.filename, member_fmt, label,
                                       _zip_opener(path, info, budget, info.filename), None, limits))
    return tuple(members), budget


def _zip_opener(path: Path, info: zipfile.ZipInfo, budget: _ByteBudget, where: str) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        zf = zipfile.ZipFile(path)
        try:
            inner = zf.open(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError) as exc:
            zf.close()
            raise reject(ReasonCode.ZIP_CORRUPT, f"cannot open member: {exc}", location=where) from exc
        return _buffered(_ClosingGuard(inner, zf, budget, info.compress_size, where))  # type: ignore[arg-type]

    return open_member


class _ClosingGuard(_GuardedStream):
    def __init__(self, inner: BinaryIO, owner: zipfile.ZipFile, budget: _ByteBudget, compressed: int,
                 where: str) -> None:
        super().__init__(inner, budget, compressed_bytes=compressed, where=where, corrupt=ReasonCode.ZIP_CORRUPT)
        self._owner = owner

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._owner.close()


# ---------------------------------------------------------------------------------------------------
# Hugging Face datasets folders
# ---------------------------------------------------------------------------------------------------
def _walk_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for d in list(dirnames):
            if (base / d).is_symlink():
                raise reject(ReasonCode.SYMLINK_NOT_ALLOWED, f"{base / d} is a symbolic link", location=root.name)
        dirnames.sort()
        for f in sorted(filenames):
            yield base / f


def _open_hf_folder(path: Path, requested: FileFormat | None, limits: IngestLimits) -> Source:
    where = path.name
    if requested not in (None, FileFormat.HF):
        raise reject(ReasonCode.FORMAT_MISMATCH, f"{path} is a folder, not a {requested.value} file")
    is_dict = (path / "dataset_dict.json").is_file()
    if not is_dict and not (path / "state.json").is_file():
        raise reject(ReasonCode.NOT_A_DATASET_FOLDER,
                     f"{path} is a folder without state.json or dataset_dict.json", location=where)
    digest = hashlib.sha256()
    total = 0
    for f in _walk_files(path):
        if f.is_symlink():
            raise reject(ReasonCode.SYMLINK_NOT_ALLOWED, f"{f} is a symbolic link", location=where)
        rel = f.relative_to(path).as_posix()
        size = f.stat().st_size
        total += size
        if total > limits.max_file_bytes:
            raise reject(ReasonCode.FILE_TOO_LARGE, f"the folder holds more than {limits.max_file_bytes} bytes",
                         location=where)
        digest.update(f"{rel}\0{size}\0".encode())
        with f.open("rb") as fh:
            while chunk := fh.read(_READ_CHUNK):
                digest.update(chunk)
    if is_dict:
        splits = sorted(d for d in path.iterdir() if d.is_dir() and (d / "state.json").is_file())
        if not splits:
            raise reject(ReasonCode.HF_DATASET_CORRUPT, "dataset_dict.json but no split folder", location=where)
    else:
        splits = [path]

    def no_stream() -> BinaryIO:  # pragma: no cover - HF members are read through `datasets`
        raise RuntimeError("HF members have no byte stream")

    members = tuple(
        Member(s.name, FileFormat.HF, f"split {s.name}: " if is_dict else "", no_stream, s) for s in splits
    )
    return Source(path, "hf", digest.hexdigest(), total, members)


def list_ingestible(path: str | os.PathLike[str]) -> list[Path]:
    """What ``marketplace ingest PATH`` / the ``ingest`` flow ingest for PATH, one submission each.

    A file or a saved HF dataset folder is itself; any other folder gives every supported file and
    saved-dataset sub-folder in it (not recursive), sorted by name, hidden files skipped. Symbolic
    links are listed so that ingestion rejects them with a reason instead of skipping them silently.
    """
    p = Path(path)
    if not p.is_dir() or p.is_symlink() or (p / "state.json").is_file() or (p / "dataset_dict.json").is_file():
        return [p]
    out = []
    for child in sorted(p.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir() and not child.is_symlink():
            if (child / "state.json").is_file() or (child / "dataset_dict.json").is_file():
                out.append(child)
            continue
        if child.name.lower().endswith(SUPPORTED_SUFFIXES):
            out.append(child)
    return out
