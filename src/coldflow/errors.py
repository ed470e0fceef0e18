"""The base of errors whose message already tells the user what went wrong and the fix.

The command line prints such errors as one line instead of a traceback. The subclasses
here are the failures of files and training that any floor may raise; each also derives
from the built-in exception it replaces, so older ``except`` clauses keep working.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
from collections.abc import Iterator

__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "DeviceError",
    "DiskFullError",
    "NoCheckpointError",
    "NonFiniteError",
    "UserError",
    "WeightsFileError",
    "is_interrupt",
    "noting_ctrl_c",
    "raise_if_interrupted",
    "user_message",
]


_ctrl_c_pending = False


def _sigint(signum: int, frame: object) -> None:
    global _ctrl_c_pending
    _ctrl_c_pending = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def noting_ctrl_c() -> Iterator[None]:
    """Remember every Ctrl-C (SIGINT) inside the block, then raise it as usual.

    Python drops a ``KeyboardInterrupt`` raised while a weakref callback or ``__del__``
    runs ("Exception ignored in ..."); PyTorch and PhiFlow run many. A long loop calls
    :func:`raise_if_interrupted` once per step so that such a Ctrl-C still stops it.
    Outside the main thread (where no handler can be set) the block runs unchanged.
    """
    global _ctrl_c_pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _sigint)
    _ctrl_c_pending = False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _ctrl_c_pending = False


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if a Ctrl-C arrived but was swallowed on its way."""
    global _ctrl_c_pending
    if _ctrl_c_pending:
        _ctrl_c_pending = False
        raise KeyboardInterrupt


def is_interrupt(error: BaseException) -> bool:
    """Whether ``error`` is a Ctrl-C: a ``KeyboardInterrupt``, or the ``RuntimeError`` that
    wraps one raised inside a TorchScript function (PhiFlow's compiled solver step)."""
    if isinstance(error, KeyboardInterrupt):
        return True
    return isinstance(error, RuntimeError) and "KeyboardInterrupt" in str(error)


class UserError(Exception):
    """An error about the user's input, files or environment, with an actionable message."""


class DiskFullError(UserError, OSError):
    """The disk (or quota) ran out while writing a file; the previous file is unchanged.

    Attributes
    ----------
    path
        The file that was being written.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint is damaged (torn, truncated, bit-flipped) or missing; names the files."""


class NoCheckpointError(CheckpointError, FileNotFoundError):
    """A run directory holds no (such) checkpoint."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped and an older intact one loaded instead."""


class NonFiniteError(UserError, FloatingPointError):
    """Training produced a NaN or infinite loss or weights; names epoch, step, last checkpoint."""


class DeviceError(UserError, RuntimeError):
    """A device was asked for that this machine does not have (e.g. CUDA without a GPU)."""


class WeightsFileError(UserError, ValueError):
    """A weights file cannot be loaded: damaged, of another layout, or carrying pickled code."""


# OS errors that are about the user's files or machine, not bugs of the program
_USER_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOENT,
    errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP,
}  # fmt: skip


_USER_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


def user_message(e: BaseException) -> str | None:
    """The one-line message of an error about the user's input, or ``None`` for a bug."""
    if isinstance(e, UserError):
        return str(e)
    if isinstance(e, OSError) and (isinstance(e, _USER_OS_ERRORS) or e.errno in _USER_ERRNOS):
        if e.filename is not None and e.strerror and str(e).startswith("[Errno"):
            return _os_line(e)  # raw from the OS: "[Errno 13] Permission denied: 'x'"
        return str(e)
    return None


def _os_line(e: OSError) -> str:
    """``path: reason`` (and the second path of a rename) instead of ``[Errno n] ...``."""
    line = f"{e.filename}: {e.strerror}"
    if e.filename2 is not None:
        line += f" (to {e.filename2})"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        line += "; choose a directory you can write to"
    elif e.errno in (errno.ENOSPC, errno.EDQUOT):
        line += "; free disk space (or choose another disk) and run again"
    return line
