"""Writing files so a crash never leaves half of one, with the permissions a user expects."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "default_mode", "fsync_dir"]


def default_mode(directory: bool = False) -> int:
    """The mode a new file (0o666) or folder (0o777) gets under the process's umask; temporary
    files are made 0o600, so they are given this before they are renamed into place."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (where the platform allows it)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(temp_path)`` beside ``path``, fsync it, give it the usual mode, rename it to
    ``path``, fsync the folder; on any failure the temporary file is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp_path = Path(temp)
    try:
        write(temp_path)
        with open(temp_path, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temp_path, default_mode())
        os.replace(temp_path, path)
    except OSError as error:
        temp_path.unlink(missing_ok=True)
        if error.filename is None:  # pyarrow and friends say "No space left on device" without a path
            raise OSError(error.errno, f"{error.strerror or error} (writing)", str(path)) from error
        raise
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path
