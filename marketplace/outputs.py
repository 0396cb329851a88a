"""Output files the product writes (reports, statements, exports, selections, id lists): the one way to write them.

Rules, for every command that writes a file:

- the output path is checked before any work: an existing *directory* there, or a *symlink* (to
  anything, even a missing target) is refused with a one-line ConfigError (a link is never followed,
  so no file elsewhere is overwritten through it); a parent that exists but is no folder is refused;
- the file is written to a temporary file in the same folder (``.<name>.<random>.partial``), then
  moved over the output path with ``os.replace`` (atomic): readers see the old file or the new one,
  never half of one, and an existing file is replaced;
- on any failure the temporary file is removed: no ``.partial`` file is left behind.

:func:`check_output_file` is the check alone (call it before long work), :func:`atomic_output` gives a
temporary path to write and installs it, :func:`write_text_atomic` writes a text in one call, and
:func:`check_output_dir` checks a folder that will receive several files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from marketplace.errors import ConfigError
from marketplace.names import display_name

__all__ = ["atomic_output", "check_output_dir", "check_output_file", "write_text_atomic"]


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as an absolute path that may be written; ConfigError (one line) when it may not."""
    p = Path(path).expanduser()
    shown = display_name(str(p), limit=300)
    if p.is_symlink():
        raise ConfigError(f"output {shown} is a symbolic link; links are never followed, so pass the real path "
                          "or remove the link")
    if p.is_dir():
        raise ConfigError(f"output {shown} is a folder; pass a file path such as {shown[1:-1]}/out.csv")
    if p.exists() and not p.is_file():
        raise ConfigError(f"output {shown} exists and is not a regular file (a device, pipe or socket); "
                          "pass another path")
    _check_nearest_existing_ancestor(p.parents, f"output {shown}", "; pass a path inside a folder")
    return p.absolute()


def _check_nearest_existing_ancestor(parents: Sequence[Path], what: str, hint: str) -> None:
    """ConfigError when the nearest existing folder above an output path is a file (nothing could be
    created below it); folders that do not exist yet are created later."""
    for ancestor in parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ConfigError(f"{what}: {display_name(str(ancestor), limit=300)} is a file, not a folder{hint}")
            return


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """A folder that will receive several output files: it may exist (as a folder) or not yet."""
    p = Path(path).expanduser()
    shown = display_name(str(p), limit=300)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"output folder {shown} is a file; pass a folder path (it is created when missing)")
    if p.is_symlink() and not p.exists():
        raise ConfigError(f"output folder {shown} is a broken symbolic link; pass a real folder")
    _check_nearest_existing_ancestor(p.parents, f"output folder {shown}", "")
    return p.absolute()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the output's folder; on success it replaces ``path`` atomically, on any
    error it is removed. ``path`` is checked first (:func:`check_output_file`) and again just before the
    move (a link or folder put there meanwhile is refused, never followed)."""
    target = check_output_file(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder of output {display_name(str(target), limit=300)} "
                          f"({exc.strerror or exc}); pass a writable path") from exc
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:100]}.", suffix=".partial")
    os.close(fd)
    tmp = Path(tmp_name)
    _default_permissions(tmp)
    try:
        yield tmp
        check_output_file(target)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _default_permissions(tmp: Path) -> None:
    """mkstemp makes an owner-only file; an output gets the permissions a plain ``open`` would give it."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        tmp.chmod(0o666 & ~umask)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the absolute path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path).absolute()
