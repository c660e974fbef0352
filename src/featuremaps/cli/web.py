"""``featuremaps serve``: the web explorer on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import app


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to listen on (127.0.0.1: this machine "
                                      "only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="TCP port.")] = 8000,
    model: Annotated[Optional[str], typer.Option(metavar="M", help="A model to offer first in the explorer.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(metavar="CKPT", help="A classifier checkpoint to offer (and "
                                                       "to use for recognition).")] = None,
    store: Annotated[Optional[Path], typer.Option(metavar="STORE", help="An extraction store: serve its "
                                                  "microscope.")] = None,
    max_upload_mb: Annotated[int, typer.Option(metavar="MB", help="Largest upload accepted.")] = 20,
    concurrency: Annotated[int, typer.Option(metavar="N", help="Model jobs run at once.")] = 2,
    queue: Annotated[int, typer.Option(metavar="N", help="Model jobs that may wait; more get 503.")] = 8,
) -> None:
    """Serve the web explorer: upload an image, play with stride/depth/padding, browse every layer's maps."""
    import uvicorn

    from featuremaps.web.app import create_app
    from featuremaps.web.service import ExplorerSettings

    settings = ExplorerSettings(model=model, checkpoint=str(checkpoint) if checkpoint else None,
                                store=str(store) if store else None, max_upload_bytes=max_upload_mb * 1024 * 1024,
                                concurrency=concurrency, queue=queue)
    application = create_app(settings)
    typer.echo(f"featuremaps explorer on http://{host}:{port}/  (API docs: /docs; Ctrl+C stops)")
    uvicorn.run(application, host=host, port=port, log_level="warning")
