"""Atomic file writes: a reader sees the old file or the new one, never half of one.

One implementation, :func:`atomic_path`: write a temporary file beside the target, flush
it to disk, rename it onto the target. A failure of any kind removes the temporary file
and leaves the target as it was; running out of disk space becomes a
:class:`~coldflow.errors.DiskFullError` that names the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from coldflow.errors import DiskFullError, UserError

__all__ = [
    "LockedError",
    "atomic_open",
    "check_writable_dir",
    "check_writable_file",
    "atomic_path",
    "format_duration",
    "exclusive_lock",
    "is_disk_full",
    "lock_holder",
    "write_bytes",
    "write_json",
    "write_text",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or an error it wraps) means the disk or quota ran out.

    Libraries that write files themselves (safetensors, h5py) do not always raise an
    ``OSError`` with ``errno`` set, so their messages are checked too.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL:
            return True
        text = str(error).lower()
        if "no space left on device" in text or "disk quota exceeded" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_despite_ctrl_c(path: str) -> None:
    """Remove ``path`` (gone already is fine), even when more Ctrl-C arrive meanwhile (a
    user pressing it twice): the last one is raised once the file is gone."""
    interrupted = None
    for _ in range(100):
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            break
        except KeyboardInterrupt as e:
            interrupted = e
    if interrupted is not None:
        raise interrupted


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Give a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    Useful for libraries (matplotlib, safetensors, h5py) that open files themselves; see
    :func:`atomic_open` for a file object. The parent directory is created if needed.

    Raises
    ------
    DiskFullError
        When the disk or quota runs out while writing (the temporary file is removed and
        ``path`` keeps its previous content).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffix: some writers (np.savez) append their own unless it is there
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    done = False
    try:
        try:
            yield Path(tmp)
            _fsync(tmp)
            os.chmod(tmp, _MODE)
            os.replace(tmp, final)
            done = True
        finally:
            if not done:
                _remove_despite_ctrl_c(tmp)
    except BaseException as error:
        if isinstance(error, DiskFullError) or not isinstance(error, Exception):
            raise
        if not is_disk_full(error):
            raise
        raise DiskFullError(
            f"{final}: out of disk space while writing this file ({error}); the previous "
            f"version of the file is unchanged. Free space on {final.parent} (or write "
            "elsewhere) and rerun.",
            str(final),
        ) from error


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it onto ``path`` on success.

    Parameters
    ----------
    path
        Final destination. Its parent directory is created if needed.
    mode
        ``"w"`` for text or ``"wb"`` for bytes.

    Yields
    ------
    IO
        The open temporary file. If the block raises, the temporary file is removed
        and ``path`` is left untouched (see :func:`atomic_path`).
    """
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def format_duration(seconds: float) -> str:
    """``"42.0 s"``, ``"3 min 05 s"`` or ``"2 h 07 min"``: for pages and progress lines."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def check_writable_dir(path: Path, what: str) -> Path:
    """Fail before any work when ``path`` (a directory, maybe not yet made) cannot be written.

    ``what`` names the setting in the message (e.g. ``--out``). Returns ``path``.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{what} {path}: {existing} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".coldflow-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(
            f"{what} {path}: cannot write into {existing} ({e.strerror}); "
            "choose a directory you can write to"
        ) from None
    return path


def check_writable_file(path: Path, what: str) -> Path:
    """Fail before any work when the file ``path`` cannot be written."""
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a directory; give a file name inside it")
    check_writable_dir(path.parent, what)
    return path


class LockedError(UserError):
    """Another process writes the same run directory, data set or study shard."""


def _holder(lock_file: Path) -> str:
    try:
        info = json.loads(lock_file.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        info = {}
    if not info:
        return "another process"
    return (
        f"process {info.get('pid', '?')} on {info.get('host', '?')} "
        f"(since {info.get('since', '?')}: {info.get('command', '?')})"
    )


@contextlib.contextmanager
def exclusive_lock(lock_file: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive OS lock (``flock``) on ``lock_file`` for the ``with`` block.

    The kernel releases the lock when the process ends, however it ends (a SIGKILL
    leaves no stale lock); the file itself stays, holding who locked it last. Locks are
    advisory: they keep out other coldflow processes, not other programs.

    Parameters
    ----------
    lock_file
        The lock file (its folder is created).
    what
        What the lock protects, for the message (e.g. ``run directory runs/x``).

    Raises
    ------
    LockedError
        If another process holds the lock: one line naming ``what``, the holder
        (process, host, since when, its command) and what to do.
    """
    import datetime
    import fcntl
    import socket
    import sys

    path = Path(lock_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(
                f"{what} is in use by {_holder(path)}; wait until it has finished, or stop "
                "it and run the command again (a stopped run resumes from its last checkpoint)"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
        }
        f.seek(0)
        f.truncate()
        f.write(json.dumps(info))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def lock_holder(lock_file: str | os.PathLike) -> str | None:
    """Who holds the lock on ``lock_file`` now (as :class:`LockedError` names it), or None
    when nobody does. Takes and drops the lock at once when it is free."""
    import fcntl

    path = Path(lock_file)
    if not path.is_file():
        return None
    with open(path) as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path)
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return None
