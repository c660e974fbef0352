"""A store can come from anywhere: file names, layer names and types that are HTML never run as script (pages
opened in Chromium with a dialog listener, from disk and served); layer names never lead a path out of the site;
a crafted top-k or image list never makes the microscope read or show another file; served pages show no
absolute path of the server."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from featuremaps.batch import ExtractConfig, Store, run_extract
from featuremaps.batch.microscope import build_microscope, read_patches, site_layers
from featuremaps.cli import main
from featuremaps.errors import SettingsError

from .conftest import write_photos

SCRIPT_NAMES = ['"><img src=x onerror=alert(1)>.jpg', "line\nbreak<img src=y onerror=alert(2)>.jpg",
                "`${alert(3)}`'.jpg"]


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile-microscope")
    photos = root / "photos"
    write_photos(photos, 6, size=(80, 60), seed=5)
    for path, name in zip(sorted(photos.iterdir()), SCRIPT_NAMES):
        path.rename(photos / name)
    run_extract(photos, root / "store", ExtractConfig(model="tinyvgg", layers=("relu2_2",), workers=0, top_k=6))
    return root / "store"


def _copy(store: Path, destination: Path) -> Path:
    shutil.copytree(store, destination)
    return destination


def _rewrite(path: Path, column: str, change) -> None:
    table = pq.read_table(path)
    values = [change(value) for value in table.column(column).to_pylist()]
    index = table.column_names.index(column)
    pq.write_table(table.set_column(index, column, pa.array(values, table.schema.field(column).type)), path)


def _rename_layer(store: Path, name: str, kind: str | None = None) -> None:
    """A crafted store: the manifest (and every table) names the layer ``name`` (of type ``kind``)."""
    manifest = json.loads((store / "manifest.json").read_text())
    for layer in manifest["layers"]:
        layer["name"] = name
        if kind is not None:
            layer["type"] = kind
    manifest["config"]["layers"] = [name]
    (store / "manifest.json").write_text(json.dumps(manifest))
    for table in ("topk", "stats"):
        _rewrite(store / f"{table}.parquet", "layer", lambda _value: name)


def _dialogs_on(page, url: str, every_channel: bool = True) -> list[str]:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(url)
    channels = page.evaluate("typeof D === 'undefined' ? 0 : D.channels.length") if every_channel else 0
    for channel in range(channels):  # every channel view puts its patches' names into the page
        page.evaluate(f"location.hash = '{channel}'")
        page.wait_for_function(f"document.title.endsWith('channel {channel}')")
    page.wait_for_timeout(300)  # an injected <img onerror> fires when its (missing) image fails to load
    return dialogs


@pytest.mark.timeout(300)
def test_script_in_file_names_never_runs_in_the_page_from_disk(browser, hostile_store, tmp_path):
    site = build_microscope(hostile_store, tmp_path / "site").parent
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    assert _dialogs_on(page, (site / "relu2_2" / "index.html").as_uri()) == []
    shown = page.locator("#channel .patch").all_text_contents()
    assert any('"><img src=x onerror=alert(1)>.jpg' in text for text in shown), shown  # shown as text
    assert page.locator("#channel img").count() == 0 and errors == []


@pytest.mark.timeout(300)
def test_crafted_layer_name_and_type_never_run_and_never_leave_the_site(browser, hostile_store, tmp_path):
    store = _copy(hostile_store, tmp_path / "store")
    _rename_layer(store, "..", "<img src=z onerror=alert(4)>")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "index.html").write_text("the victim's page")
    (victim / "patches-0.jpg").write_text("the victim's picture")
    status = main(["microscope", str(store), "-o", str(victim / "site")])
    assert status == 0
    assert (victim / "index.html").read_text() == "the victim's page"
    assert (victim / "patches-0.jpg").read_text() == "the victim's picture"
    folders = site_layers(victim / "site")
    assert folders == {"..": victim / "site" / "_.."} and (victim / "site" / "_.." / "index.html").is_file()
    for page_path in (victim / "site" / "index.html", victim / "site" / "_.." / "index.html"):
        text = page_path.read_text()
        if "id='data'>" in text:  # the data block (application/json, "</" escaped) holds the raw text: inert
            head, rest = text.split("id='data'>", 1)
            assert "</" not in rest.split("</script>", 1)[0]
            text = head + rest.split("</script>", 1)[1]
        assert "<img src=z" not in text and "&lt;img src=z" in text  # escaped on the server side too
        page = browser.new_page()
        assert _dialogs_on(page, page_path.as_uri(), every_channel=False) == []
    page = browser.new_page()
    assert _dialogs_on(page, (victim / "site" / "_.." / "index.html").as_uri()) == []
    assert "<img src=z onerror=alert(4)>" in page.text_content("body")


@pytest.mark.parametrize("path", ["/etc/hostname", "../../secret.png", "{secret}"])
def test_a_crafted_topk_path_is_refused_and_nothing_is_read(hostile_store, tmp_path, path, monkeypatch):
    store = _copy(hostile_store, tmp_path / "store")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (64, 64), (255, 0, 0)).save(secret)
    _rewrite(store / "topk.parquet", "path", lambda _value: path.format(secret=secret))
    read = []
    monkeypatch.setattr("featuremaps.batch.microscope.read_image_file", lambda p: read.append(p) or b"")
    with pytest.raises(SettingsError, match=r"topk.parquet row 0 does not match the store \(its path is not image "
                                            r"\d+ of the store's image list\): a damaged or crafted store"):
        build_microscope(store, tmp_path / "site")
    assert read == [] and not (tmp_path / "site").exists()


def test_a_crafted_image_list_never_shows_another_file(hostile_store, tmp_path):
    """sources.parquet names a secret picture: its checksum is not the one the extraction recorded, so it is
    not drawn (the tile says unreadable), and the other images still are."""
    store = _copy(hostile_store, tmp_path / "store")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (80, 60), (255, 0, 0)).save(secret)
    sources = pq.read_table(store / "sources.parquet").column("path").to_pylist()
    replaced = sources[0]
    _rewrite(store / "sources.parquet", "path", lambda value: str(secret) if value == replaced else value)
    _rewrite(store / "topk.parquet", "path", lambda value: str(secret) if value == replaced else value)
    site = build_microscope(store, tmp_path / "site").parent
    top = pq.read_table(store / "topk.parquet").to_pylist()
    for entry in top:
        tiles = read_patches(site / "relu2_2", entry["channel"])
        tile = np.asarray(tiles[entry["rank"]], dtype=np.int16)
        reddish = (tile[..., 0] > 200) & (tile[..., 1] < 60) & (tile[..., 2] < 60)
        assert reddish.mean() < 0.2, "the secret picture was drawn"
    page = (site / "relu2_2" / "index.html").read_text()
    assert "changed since the extraction" not in page  # the reason stays in the log, the page counts them
    assert json.loads(page.split("id='data'>")[1].split("</script>")[0])["unreadable"] == 1


def test_names_are_relative_to_the_images_folder_and_a_served_site_links_no_server_path(hostile_store, tmp_path):
    site = build_microscope(hostile_store, tmp_path / "local").parent
    data = json.loads((site / "relu2_2" / "index.html").read_text().split("id='data'>")[1].split("</script>")[0]
                      .replace("<\\/", "</"))
    patches = [p for c in data["channels"] for p in c["patches"]]
    assert {p["name"] for p in patches} <= set(SCRIPT_NAMES) | {f"photo_{i:04d}.jpg" for i in range(6)}
    assert all(p["uri"].startswith("file:///") for p in patches)  # from disk: links to the user's own files
    served = build_microscope(hostile_store, tmp_path / "served", link_images=False).parent
    text = "".join(p.read_text() for p in served.rglob("*.html"))
    assert str(Store(hostile_store).sources()[0]).rsplit("/", 1)[0] not in text and "file://" not in text


@pytest.mark.timeout(300)
def test_served_microscope_pages_run_no_script_from_names(browser, hostile_store):
    import socket

    import uvicorn

    from featuremaps.web import ExplorerSettings, create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(ExplorerSettings(store=str(hostile_store)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    site = app.state.microscope_site
    try:
        page = browser.new_page()
        assert _dialogs_on(page, f"http://127.0.0.1:{port}/microscope/relu2_2/index.html") == []
        assert "file://" not in page.content() and str(hostile_store.parent) not in page.content()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not site.exists(), "the temporary site outlived the server"
