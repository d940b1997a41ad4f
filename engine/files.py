"""File helpers every step shares: content hashes, atomic writes, atomic folders, config-relative paths.

A reader never sees a half-written file or folder: content goes to a temporary sibling (same folder,
so the same file system) and is renamed over the target with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str, *, fallback: str, max_length: int | None = None) -> str:
    """``name`` as a file-name part: runs of other characters become "-", no leading/trailing "-" or ".".

    The one rule for every file or folder named after a user's run, job or model name.
    """
    safe = _UNSAFE_NAME_CHARS.sub("-", name).strip("-.")
    if max_length is not None:
        safe = safe[:max_length].strip("-.")
    return safe or fallback


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(target: Path) -> str:
    # The writer's pid in the name lets a later run tell a killed writer's leftovers from live work.
    return f".{target.name}.{os.getpid()}."


def leftover_temp_paths(target: str | Path, *, including_pid: int | None = None) -> list[Path]:
    """Temp files and staging folders for ``target`` whose writing process no longer exists.

    ``including_pid`` also counts this (live) process's own, for cleaning up after a failure.
    """
    target = Path(target)
    prefix = f".{target.name}."
    found = []
    for path in sorted(target.parent.glob(f"{glob_escape(prefix)}*")):
        pid_text = path.name[len(prefix) :].split(".", 1)[0]
        if path.suffix not in (".tmp", ".staging") or not pid_text.isdigit():
            continue
        if int(pid_text) == including_pid or not pid_alive(int(pid_text)):
            found.append(path)
    return found


def remove_leftovers(target: str | Path, *, including_pid: int | None = None) -> list[Path]:
    """Remove what killed writers of ``target`` left behind; returns what was removed."""
    removed = []
    for path in leftover_temp_paths(target, including_pid=including_pid):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def first_existing_parent(path: str | Path) -> Path:
    """The nearest existing ancestor of ``path`` (``path`` itself when it exists)."""
    current = Path(path).absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC, EDQUOT or EFBIG, also when a library only says so in its message (torch's writer does)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        text = str(seen).lower()
        if "no space left" in text or "disk quota" in text or "file too large" in text or "disk is full" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """An OSError raised inside names ``path`` when it names no file itself.

    A write that fails on a full disk raises ENOSPC with no file name; the error line must say
    which file could not be written.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a synced temp file in the same folder and a rename."""
    target = Path(path)
    with naming(target):
        _write_bytes_atomic(target, data)


def _write_bytes_atomic(target: Path, data: bytes) -> None:
    missing = _missing_parents(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    except BaseException:
        remove_empty(missing)
        raise
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would have had.
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        remove_empty(missing)  # folders this write created, so a failed write leaves nothing behind
        raise


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    current = folder.absolute()
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove these folders (deepest first) where they are empty; others are left alone."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, value: Any, *, indent: int | None = 2) -> None:
    """Write ``value`` as JSON (non-ASCII kept, trailing newline) to ``path`` atomically."""
    write_atomic(path, json.dumps(value, ensure_ascii=False, indent=indent) + "\n")


def staging_folder(target: str | Path) -> Path:
    """A new empty folder next to ``target`` to build its content in; see :func:`replace_folder`."""
    target = Path(target)
    with naming(target.parent):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".staging", dir=target.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the result from other readers
    return staging


def replace_folder(staging: str | Path, target: str | Path) -> None:
    """Put the finished ``staging`` folder in place of ``target``, replacing any old one.

    A folder cannot be renamed over a non-empty one, so the old folder is first renamed aside and
    removed only once the new one is in place; if the swap fails, the old folder is put back.
    """
    staging, target = Path(staging), Path(target)
    if not target.exists():
        os.replace(staging, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    old = aside / target.name
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old, target)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """``with atomic_folder(out) as staging:`` fill ``staging``; on success it becomes ``out``.

    On an exception the staging folder is removed and ``out`` is left as it was.
    """
    staging = staging_folder(target)
    try:
        yield staging
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def resolve_from(value: str, base: str | Path) -> str:
    """``value`` as an absolute path: ``~`` expanded, a relative path taken from ``base``; '' stays ''.

    Config files name paths relative to themselves, so a job reads the same files wherever it runs.
    """
    if not value or Path(value).is_absolute():
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    return str((Path(base) / path).resolve())
