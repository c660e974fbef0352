"""``featuremaps demo``: write the demo report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featuremaps.cli._common import Overwrite, app


@app.command("demo")
def demo_command(
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR", help="Folder of the report.")] = Path("demo-output"),
    overwrite: Overwrite = False,
) -> None:
    """Write a self-contained HTML report of what featuremaps does (no network needed)."""
    from featuremaps.cli._progress import Status
    from featuremaps.files import check_outputs

    check_outputs([output / "index.html"], overwrite=overwrite)  # before minutes of work
    status = Status("demo")
    status.step("loading torch and the models' code")
    from featuremaps.demo import build_demo

    with status.working() as working:  # a live line with the time spent in a terminal; a line per picture
        page = build_demo(output, on_section=lambda number, total, name: working(f"{number}/{total} {name}"),
                          on_figure=lambda name: status.note(f"  made {name}"), overwrite=overwrite)
    status.done(f"wrote {page}")
    typer.echo(str(page.resolve()))
