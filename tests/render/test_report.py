"""The HTML report writes its pictures beside the page and escapes text."""

from __future__ import annotations

from PIL import Image

from featuremaps.render.report import Report


def test_report_writes_page_and_pictures(tmp_path):
    report = Report("T <1>", intro="intro")
    section = report.section("First")
    section.text("a `code` & b").figure(Image.new("RGB", (4, 4)), "a picture", name="pic")
    section.figure(Image.new("RGB", (4, 4)), "same name", name="pic")
    section.table(["a", "b"], [[1, "<x>"]])
    report.section("Second").code("x = 1")
    page = report.write(tmp_path / "out")
    html = page.read_text()
    assert page.name == "index.html"
    assert (tmp_path / "out" / "pic.png").is_file() and (tmp_path / "out" / "pic-2.png").is_file()
    assert "T &lt;1&gt;" in html and "<code>code</code> &amp; b" in html and "&lt;x&gt;" in html
    assert "href='#first'" in html and "<pre>x = 1</pre>" in html
