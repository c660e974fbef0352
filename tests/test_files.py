"""The writing rules every output follows: atomic, never a user's file without overwrite, never through a
link; and the reading rule for inputs: regular files only, size checked before reading."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from featuremaps.errors import SettingsError
from featuremaps.files import (
    LEDGER,
    FileRefused,
    check_outputs,
    read_regular_file,
    replaceable,
    safe_name,
    save_picture,
    write_output,
)


def test_a_file_featuremaps_wrote_is_replaced_without_overwrite(tmp_path):
    path = tmp_path / "a.png"
    save_picture(Image.new("RGB", (4, 4), "red"), path)
    assert replaceable(path) is None
    save_picture(Image.new("RGB", (4, 4), "blue"), path)
    with Image.open(path) as image:
        assert image.getpixel((0, 0)) == (0, 0, 255)
    ledger = json.loads((tmp_path / LEDGER).read_text())
    assert list(ledger["files"]) == ["a.png"]


def test_a_users_file_is_never_replaced_without_overwrite(tmp_path):
    path = tmp_path / "index.html"
    path.write_text("the user's page")
    with pytest.raises(SettingsError, match=r"would replace: .*index.html exists and featuremaps did not write it; "
                                            r"pass --overwrite to replace it, or choose another -o \(nothing"):
        write_output(path, lambda temp: temp.write_text("ours"))
    assert path.read_text() == "the user's page"
    write_output(path, lambda temp: temp.write_text("ours"), overwrite=True)
    assert path.read_text() == "ours"


def test_a_file_changed_after_featuremaps_wrote_it_is_protected(tmp_path):
    path = tmp_path / "maps.png"
    save_picture(Image.new("RGB", (4, 4)), path)
    path.write_bytes(path.read_bytes() + b"edited")
    assert replaceable(path) == "was changed since featuremaps wrote it"
    with pytest.raises(SettingsError, match="was changed since featuremaps wrote it"):
        save_picture(Image.new("RGB", (4, 4)), path)


def test_a_link_is_never_written_through(tmp_path):
    target = tmp_path / "precious.png"
    target.write_bytes(b"the user's picture")
    link = tmp_path / "out.png"
    link.symlink_to(target)
    with pytest.raises(SettingsError, match=r"out.png is a link \(to .*precious.png\); featuremaps never writes "
                                            "through a link"):
        save_picture(Image.new("RGB", (4, 4)), link)
    save_picture(Image.new("RGB", (4, 4)), link, overwrite=True)
    assert target.read_bytes() == b"the user's picture"  # the target is untouched: the link itself was replaced
    assert not link.is_symlink() and link.is_file()


def test_every_problem_is_listed_at_once_and_a_folder_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "a.png").write_text("mine")
    (tmp_path / "b.png").mkdir()
    with pytest.raises(SettingsError) as caught:
        check_outputs([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"])
    message = str(caught.value)
    assert "a.png exists and featuremaps did not write it" in message and "b.png is a folder" in message
    assert "c.png" not in message
    with pytest.raises(SettingsError, match="b.png is a folder; choose another path"):
        check_outputs([tmp_path / "a.png", tmp_path / "b.png"], overwrite=True)


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "v.png"
    save_picture(Image.new("RGB", (4, 4), "red"), path)
    before = path.read_bytes()

    def failing(temp: Path) -> None:
        temp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device") as caught:
        write_output(path, failing)
    assert caught.value.filename == str(path)  # the error names the file being written, not a temporary name
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEDGER, "v.png"]


def test_two_writers_in_one_folder_keep_one_ledger(tmp_path):
    def write(index: int) -> None:
        for round_ in range(5):
            write_output(tmp_path / f"f{index}.txt", lambda temp, text=f"{index}-{round_}": temp.write_text(text))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(json.loads((tmp_path / LEDGER).read_text())["files"]) == [f"f{i}.txt" for i in range(4)]
    assert all(replaceable(tmp_path / f"f{i}.txt") is None for i in range(4))


@pytest.mark.parametrize("name, expected", [("layer1.0.relu:1", "layer1.0.relu_1"), ("..", "_.."),
                                            ("../../victim", "_.._.._victim"), ("a/b\\c", "a_b_c"), ("", "layer"),
                                            ("<img src=x>", "_img_src_x_")])
def test_safe_name_stays_in_its_folder(name, expected):
    assert safe_name(name) == expected
    assert "/" not in safe_name(name) and not safe_name(name).startswith(".")


def test_only_regular_files_are_read_and_their_size_is_checked_first(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(FileRefused, match=r"is a FIFO \(named pipe\), not a regular file"):
        read_regular_file(fifo, max_bytes=100)  # returns at once: a FIFO with no writer never blocks the read
    with pytest.raises(FileRefused, match="is a device, not a regular file"):
        read_regular_file("/dev/zero", max_bytes=100)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 101)
    with pytest.raises(FileRefused, match="is 101 bytes, over the limit of 100"):
        read_regular_file(big, max_bytes=100)
    assert read_regular_file(big, max_bytes=101) == b"x" * 101
    with pytest.raises(IsADirectoryError):
        read_regular_file(tmp_path, max_bytes=100)
