"""Where a dataset's images are: a folder tree, or a text, CSV or Parquet file listing paths.

The list is sorted (folders) or kept in file order (lists), and each image's index in it is
its identity in the store: shards are fixed ranges of indices, so a resumed run meets the
same images in the same shards.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

from featuremaps.errors import SettingsError
from featuremaps.files import IMAGE_SUFFIXES

__all__ = ["absolute_sources", "list_sources"]

_LIST_SUFFIXES = (".txt", ".csv", ".parquet")


def _resolve(entries: list[str], base: Path) -> list[str]:
    """Absolute paths; relative paths in a list file are relative to the list file's folder."""
    return [os.path.abspath(base / entry) for entry in entries]


def absolute_sources(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Paths made absolute (against the working directory), so a store works from anywhere."""
    return [os.path.abspath(path) for path in paths]


def list_sources(source: str | os.PathLike[str]) -> list[str]:
    """Absolute image paths of ``source``.

    - a folder: every file with an image suffix below it, sorted;
    - ``.txt``: one path per line (blank lines and ``#`` comments skipped);
    - ``.csv``: the ``path`` column (or the first column when there is no header named ``path``);
    - ``.parquet``: the ``path`` column.

    Raises:
        SettingsError: a missing source, an unknown list format, a list without paths.
    """
    source = Path(source)
    if not source.exists():
        raise SettingsError(f"{source}: source not found (a folder of images or a .txt/.csv/.parquet list)")
    if source.is_dir():
        # Broken links and link loops are kept, so they end in errors.parquet with their reason, not silently.
        paths = sorted(os.path.abspath(p) for p in source.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or p.is_symlink()))
        if not paths:
            raise SettingsError(f"{source}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder tree")
        return paths
    suffix = source.suffix.lower()
    if suffix in (".txt", ".csv"):
        raw = source.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise SettingsError(f"{source}: a list must be UTF-8 text; byte {error.start} is not ({error.reason})") \
                from None
        if "\x00" in text:
            raise SettingsError(f"{source}: a list must be text; this file holds NUL bytes (a binary file?)")
    if suffix == ".txt":
        entries = [line.strip() for line in text.splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
    elif suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        if not rows:
            raise SettingsError(f"{source}: empty CSV")
        header = [cell.strip().lower() for cell in rows[0]]
        column = header.index("path") if "path" in header else 0
        body = rows[1:] if "path" in header else rows
        entries = [row[column].strip() for row in body if len(row) > column and row[column].strip()]
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(source)
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise SettingsError(f"{source}: not a readable Parquet file ({' '.join(str(error).split())[:200]})") \
                from None
        if "path" not in table.column_names:
            raise SettingsError(f"{source}: a Parquet list needs a 'path' column; it has {', '.join(table.column_names)}")
        entries = [str(v) for v in table.column("path").to_pylist() if v]
    else:
        raise SettingsError(f"{source}: a source is a folder or a list file ({', '.join(_LIST_SUFFIXES)}); "
                            f"got {suffix or 'a file without suffix'}")
    if not entries:
        raise SettingsError(f"{source}: the list names no images")
    return _resolve(entries, source.parent)
