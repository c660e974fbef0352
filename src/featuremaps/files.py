"""Writing files so a crash never leaves half of one and a user's file is never replaced by surprise.

Two rules hold for every file featuremaps writes (pictures, pages, arrays, sites):

- **Atomic**: the file is written to a temporary name beside its place, flushed, then renamed
  into place (:func:`atomic_write`); a crash or a full disk leaves the old file (or nothing),
  never half of one, and the error names the file.
- **Never replace a file featuremaps did not write** unless ``overwrite`` (``--overwrite``):
  each folder featuremaps writes into keeps a small ledger, ``.featuremaps-written.json``, of
  the files it wrote there and their SHA-256. A file that is missing, or that featuremaps wrote
  and nobody changed since, may be replaced; anything else (a user's file, a file changed
  since, a link, a folder) is refused *before any work*, with the list of what would be
  replaced (:func:`check_outputs`). A link is never written through: with ``overwrite`` the
  link itself is replaced, its target never.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from featuremaps.errors import SettingsError

try:
    import fcntl
except ImportError:  # Windows: one process per output folder, unlocked
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "IMAGE_SUFFIXES",
    "LEDGER",
    "FileRefused",
    "JsonRefused",
    "atomic_write",
    "check_outputs",
    "default_mode",
    "describe_earlier",
    "earlier_outputs",
    "encode_picture",
    "fsync_dir",
    "parse_json",
    "read_regular_file",
    "replaceable",
    "safe_name",
    "save_picture",
    "save_safetensors",
    "write_output",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""File name endings read as images when a folder is given (datasets, predict, extract lists)."""

LEDGER = ".featuremaps-written.json"
"""The file in each output folder that lists what featuremaps wrote there (name -> SHA-256)."""

_PICTURE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF"}


class FileRefused(OSError):
    """A file featuremaps will not read: not a regular file (a FIFO, a device), or larger than the limit.
    ``reason`` says which, in words."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(errno.EINVAL, reason, str(path))
        self.reason = reason


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int) -> bytes:
    """The bytes of ``path`` when it is a regular file of at most ``max_bytes``, checked before reading.

    The file is opened without blocking (a FIFO never hangs the caller) and inspected with
    ``fstat`` on the open handle, so what is checked is what is read: ``/dev/zero``, a FIFO, a
    socket or a file that grows past the limit is refused, never read into memory.

    Raises:
        FileRefused: not a regular file, or over ``max_bytes``.
        OSError: missing, a folder, no permission (as ``open`` raises them).
    """
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(handle)
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        if not stat.S_ISREG(status.st_mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(status.st_mode) else "a device" if
                    stat.S_ISCHR(status.st_mode) or stat.S_ISBLK(status.st_mode) else "a socket" if
                    stat.S_ISSOCK(status.st_mode) else "not a regular file")
            raise FileRefused(path, f"is {kind}, not a regular file; featuremaps reads only regular files")
        if status.st_size > max_bytes:
            raise FileRefused(path, f"is {status.st_size:,} bytes, over the limit of {max_bytes:,}")
        chunks, total = [], 0
        while True:
            chunk = os.read(handle, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise FileRefused(path, f"grew past the limit of {max_bytes:,} bytes while it was read")
        return b"".join(chunks)
    finally:
        os.close(handle)


class JsonRefused(ValueError):
    """JSON featuremaps will not parse: not UTF-8, nested too deep, a number too long, or not JSON."""


def parse_json(data: str | bytes, *, max_depth: int = 32, max_digits: int = 100) -> Any:
    """``json.loads`` for text from outside (a checkpoint's record, a store's manifest, a request):
    refused with a reason when it is not UTF-8, not JSON, nested deeper than ``max_depth`` or holds a
    number longer than ``max_digits`` (Python would spend seconds on it, or fail with its own wording).

    Raises:
        JsonRefused: saying which of those it is.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonRefused(f"not UTF-8 text (byte {error.start} is 0x{data[error.start]:02x})") from None
    depth = deepest = run = longest = 0
    in_string = escaped = False
    for char in data:  # one pass outside strings: bracket depth and digit runs, before the parser sees them
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string, run = True, 0
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
        if char.isdigit():
            run += 1
            longest = max(longest, run)
        elif char not in ".eE+-":
            run = 0
    if deepest > max_depth:
        raise JsonRefused(f"JSON nested {deepest} levels deep; at most {max_depth}")
    if longest > max_digits:
        raise JsonRefused(f"a number of {longest:,} digits; at most {max_digits}")
    try:
        return json.loads(data)
    except json.JSONDecodeError as error:
        raise JsonRefused(f"not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None


def safe_name(text: str, *, fallback: str = "layer", limit: int = 120) -> str:
    """``text`` as one file or folder name that stays where it is put: letters, digits, ``_``, ``-`` and
    inner dots only (``layer1.0.relu:1`` -> ``layer1.0.relu_1``, ``..`` -> ``_..``, ``a/../b`` -> ``a_.._b``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(text))[:limit]
    if name.startswith("."):
        name = "_" + name
    return name or fallback


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
    ``path``, fsync the folder; on any failure the temporary file is removed and ``path`` is untouched.

    An ``OSError`` that names no file (pyarrow's, Pillow's "No space left on device") is raised
    again naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the temporary name keeps the suffix (writers such as ffmpeg choose the format by it)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name[:80]}.", suffix=f".tmp{path.suffix[:16]}",
                                        dir=path.parent)
    except OSError as error:
        raise _naming(error, path) from error
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
        raise _naming(error, path) from error
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def save_safetensors(tensors: Any, path: str | os.PathLike[str], metadata: dict[str, str] | None = None, *,
                     shown: str | os.PathLike[str] | None = None) -> None:
    """``safetensors.torch.save_file``, with its write errors (a full disk) as an ``OSError`` naming ``shown``
    (the file's final place; default ``path``)."""
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except Exception as error:  # noqa: BLE001 - SafetensorError is not an OSError; say which file and why
        if type(error).__name__ != "SafetensorError" and not isinstance(error, OSError):
            raise
        text = " ".join(str(error).split())
        found = re.search(r"I/O error: (.*?) \(os error \d+\)", text)  # safetensors: "Error while serializing: ..."
        reason = getattr(error, "strerror", None) or (found.group(1) if found else text[:200]) or type(error).__name__
        raise OSError(getattr(error, "errno", None) or errno.EIO, f"{reason} (writing)", str(shown or path)) from error


def _naming(error: OSError, path: Path) -> OSError:
    """``error`` naming ``path`` (the file being written) when it names no file, or names the temporary one."""
    if error.filename is not None and ".tmp" not in Path(str(error.filename)).name:
        return error
    return OSError(error.errno, f"{error.strerror or error} (writing)", str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_ledger(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / LEDGER).read_text(encoding="utf-8"))
        files = data.get("files", {}) if isinstance(data, dict) else {}
        return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (two processes writing into one folder keep one ledger)."""
    handle = os.open(folder, os.O_RDONLY) if fcntl is not None else -1
    try:
        if handle >= 0:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        if handle >= 0:
            os.close(handle)


def _remember(path: Path) -> None:
    """Record in the folder's ledger that featuremaps wrote ``path`` as it is now."""
    folder = path.parent
    with _locked(folder):
        files = _read_ledger(folder)
        files[path.name] = _sha256(path)
        text = json.dumps({"written_by": "featuremaps", "note": "files featuremaps wrote here and their SHA-256: "
                           "it replaces them without --overwrite only while they are unchanged",
                           "files": dict(sorted(files.items()))}, indent=1)
        atomic_write(folder / LEDGER, lambda temp: temp.write_text(text, encoding="utf-8"))


def earlier_outputs(folder: str | os.PathLike[str], written: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files featuremaps wrote into ``folder`` before (its ledger) that still exist and are not among
    ``written`` (this run's): pictures of an earlier run that a reader could take for this one's."""
    folder = Path(folder)
    now = {Path(path).name for path in written if Path(path).parent.resolve() == folder.resolve()}
    return sorted(folder / name for name in _read_ledger(folder) if name not in now and (folder / name).is_file())


def describe_earlier(folder: str | os.PathLike[str], written: Iterable[str | os.PathLike[str]]) -> str:
    """A note naming :func:`earlier_outputs` (empty when there are none)."""
    earlier = earlier_outputs(folder, written)
    if not earlier:
        return ""
    names = ", ".join(path.name for path in earlier[:3]) + (f" and {len(earlier) - 3} more" if len(earlier) > 3 else "")
    return (f"note: {folder} also holds {len(earlier)} file{'s' if len(earlier) != 1 else ''} of an earlier run, not "
            f"written now ({names}); use a new folder to keep runs apart")


def replaceable(path: str | os.PathLike[str]) -> str | None:
    """None when featuremaps may write ``path`` without ``overwrite``, else why not.

    May: the path does not exist, or it is a regular file featuremaps wrote (its SHA-256 is the
    one in the folder's ledger). May not: a user's file, a file changed since, a link, a folder.
    """
    path = Path(path)
    if path.is_symlink():
        return f"is a link (to {os.readlink(path)}); featuremaps never writes through a link"
    if not path.exists():
        if path.parent.exists() and not path.parent.is_dir():
            return f"its folder {path.parent} is a file"
        return None
    if path.is_dir():
        return "is a folder"
    if not path.is_file():
        return "is not a regular file"
    recorded = _read_ledger(path.parent).get(path.name)
    if recorded is None:
        return "exists and featuremaps did not write it"
    try:
        if _sha256(path) == recorded:
            return None
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    return "was changed since featuremaps wrote it"


def check_outputs(paths: Iterable[str | os.PathLike[str]], *, overwrite: bool = False,
                  option: str = "-o") -> None:
    """Refuse, before any work, outputs that would replace a file featuremaps did not write.

    Raises:
        SettingsError: naming every file that would be replaced and why; with ``overwrite`` only
            outputs that can never be written (a folder where a file goes) are refused.
    """
    problems = []
    for path in dict.fromkeys(Path(p) for p in paths):
        reason = replaceable(path)
        if reason is None:
            continue
        if overwrite and (path.is_symlink() or path.is_file()):
            continue
        problems.append(f"{path} {reason}")
    if not problems:
        return
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    fix = ("choose another path" if overwrite else
           f"pass --overwrite to replace {'it' if len(problems) == 1 else 'them'}, or choose another {option}")
    raise SettingsError(f"would replace: {shown}; {fix} (nothing was written)")


def write_output(path: str | os.PathLike[str], write: Callable[[Path], Any], *, overwrite: bool = False) -> Path:
    """Write one output file: checked (:func:`check_outputs`), atomic, recorded in the folder's ledger.

    ``write(temp_path)`` writes the content to the temporary path it is given.
    """
    path = Path(path)
    check_outputs([path], overwrite=overwrite)
    atomic_write(path, write)
    _remember(path)
    return path


def save_picture(picture: Any, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a PIL image (format from the suffix: .png, .jpg, .webp, .gif) or SVG text (.svg), as :func:`write_output`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if isinstance(picture, str):
        return write_output(path, lambda temp: temp.write_text(picture, encoding="utf-8"), overwrite=overwrite)
    if suffix not in _PICTURE_FORMATS:
        raise SettingsError(f"{path}: a picture must end in {', '.join(_PICTURE_FORMATS)}")
    image_format = _PICTURE_FORMATS[suffix]
    if image_format == "JPEG" and picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")

    data = encode_picture(picture, image_format)
    return write_output(path, lambda temp: temp.write_bytes(data), overwrite=overwrite)


def encode_picture(picture: Any, image_format: str, **options: Any) -> bytes:
    """A PIL image encoded in memory. Pictures are encoded first and written from Python: Pillow's C
    encoders write a small image with one ``write()`` and ignore a short one, so on a full disk they
    leave a truncated file without an error; Python's file writes raise."""
    buffer = io.BytesIO()
    picture.save(buffer, format=image_format, **options)
    return buffer.getvalue()
