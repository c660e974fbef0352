"""A small, self-contained HTML report: sections of text, figures and tables.

Pictures are written beside ``index.html`` (relative links), so the folder can be opened
from the file system, zipped or served as is. No script, no CDN.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from featuremaps.files import check_outputs, save_picture, write_output

__all__ = ["Figure", "Report", "Section"]

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1.5em; color: #222; }
h1 { font-size: 1.7em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { display: inline-block; margin: .6em 1.2em .6em 0; vertical-align: top; }
figure img, figure video { max-width: 100%; border: 1px solid #ccc; image-rendering: auto; }
figcaption { font-size: .9em; color: #555; max-width: 640px; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; } code, pre { background: #f6f6f6; padding: .1em .3em; }
pre { padding: .6em; white-space: pre-wrap; } nav a { margin-right: 1em; }
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "item"


@dataclass
class Figure:
    """A picture with a caption: a PIL image, or a file's bytes and suffix (GIF, MP4, SVG).

    ``name`` is the stem of its file name in the report folder.
    """

    source: Image.Image | tuple[bytes, str]
    caption: str
    name: str


@dataclass
class Section:
    """One titled part of the report; blocks are rendered in the order they were added."""

    title: str
    blocks: list[str | Figure] = field(default_factory=list)
    on_figure: Callable[[str], None] | None = None
    """Called with each figure's name as it is added (progress for long reports)."""

    def text(self, paragraph: str) -> Section:
        """A paragraph of plain text (escaped); ``code`` in backquotes is kept as code."""
        escaped = html.escape(paragraph)
        self.blocks.append("<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped) + "</p>")
        return self

    def code(self, text: str) -> Section:
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def figure(self, source: Image.Image | Path, caption: str, name: str | None = None) -> Section:
        """Add a picture; a file is read now, so it may be deleted before :meth:`Report.write`."""
        content = source if isinstance(source, Image.Image) else (Path(source).read_bytes(), Path(source).suffix)
        self.blocks.append(Figure(content, caption, name or _slug(caption)[:40]))
        if self.on_figure is not None:
            self.on_figure(self.blocks[-1].name)  # type: ignore[union-attr]
        return self

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Section:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
        )
        self.blocks.append(f"<table><tr>{head}</tr>{body}</table>")
        return self


@dataclass
class Report:
    """A report with a title, an intro and sections; :meth:`write` makes the folder."""

    title: str
    intro: str = ""
    sections: list[Section] = field(default_factory=list)
    on_figure: Callable[[str], None] | None = None

    def section(self, title: str) -> Section:
        section = Section(title, on_figure=self.on_figure)
        self.sections.append(section)
        return section

    def files(self) -> list[str]:
        """The names :meth:`write` writes: ``index.html`` and one file per figure."""
        used: set[str] = set()
        return ["index.html"] + [self._file_name(block, used) for section in self.sections for block in section.blocks
                                 if isinstance(block, Figure)]

    def write(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``directory/index.html`` and its pictures; return the page's path.

        Every file is written atomically; a file featuremaps did not write is replaced only with
        ``overwrite``, and that is checked for all of them before the first is written.
        """
        directory = Path(directory)
        check_outputs([directory / name for name in self.files()], overwrite=overwrite)
        used: set[str] = set()
        parts = [
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>",
        ]
        if self.intro:
            parts.append(f"<p>{html.escape(self.intro)}</p>")
        if len(self.sections) > 1:
            links = "".join(f"<a href='#{_slug(s.title)}'>{html.escape(s.title)}</a>" for s in self.sections)
            parts.append(f"<nav>{links}</nav>")
        for section in self.sections:
            parts.append(f"<h2 id='{_slug(section.title)}'>{html.escape(section.title)}</h2>")
            for block in section.blocks:
                parts.append(self._figure_html(block, directory, used, overwrite) if isinstance(block, Figure)
                             else block)
        parts.append("</body></html>")
        text = "\n".join(parts)
        return write_output(directory / "index.html", lambda temp: temp.write_text(text, encoding="utf-8"),
                            overwrite=overwrite)

    @staticmethod
    def _file_name(figure: Figure, used: set[str]) -> str:
        stem, n = figure.name, 2
        while stem in used:
            stem, n = f"{figure.name}-{n}", n + 1
        used.add(stem)
        return f"{stem}.png" if isinstance(figure.source, Image.Image) else f"{stem}{figure.source[1].lower()}"

    @classmethod
    def _figure_html(cls, figure: Figure, directory: Path, used: set[str], overwrite: bool) -> str:
        filename = cls._file_name(figure, used)
        if isinstance(figure.source, Image.Image):
            save_picture(figure.source, directory / filename, overwrite=overwrite)
        else:
            data = figure.source[0]
            write_output(directory / filename, lambda temp: temp.write_bytes(data), overwrite=overwrite)
        caption = html.escape(figure.caption)
        if filename.endswith(".mp4"):
            media = f"<video src='{filename}' controls loop muted></video>"
        else:
            media = f"<img src='{filename}' alt='{caption}'>"
        return f"<figure>{media}<figcaption>{caption}</figcaption></figure>"
