"""``featuremaps serve``: the web explorer on this machine."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
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
    max_parameters: Annotated[int, typer.Option(metavar="N", help="Largest model (parameter values) a request may "
                                                "build; larger ones still list their layers.")] = 150_000_000,
    allowed_host: Annotated[Optional[list[str]], typer.Option(
        "--allowed-host", metavar="NAME", help="A host name the server answers to, besides 127.0.0.1, localhost, "
        "::1 and --host (repeatable; '*' for any, which disables the DNS-rebinding check).")] = None,
) -> None:
    """Serve the web explorer: upload an image, play with stride/depth/padding, browse every layer's maps."""
    from featuremaps.cli._progress import Status
    from featuremaps.errors import SettingsError

    if not 1 <= port <= 65535:
        raise SettingsError(f"--port must be from 1 to 65535; got {port}")
    if max_upload_mb < 1:
        raise SettingsError(f"--max-upload-mb must be >= 1; got {max_upload_mb}")
    for option, value, low in (("--concurrency", concurrency, 1), ("--queue", queue, 0),
                               ("--max-parameters", max_parameters, 1)):
        if value < low:  # checked again by ExplorerSettings; here before the slow imports
            raise SettingsError(f"{option} must be an integer >= {low}; got {value}")
    status = Status("serve")
    status.step("loading torch, the models' code and the web server (a few seconds)")
    import uvicorn

    from featuremaps.web.app import create_app
    from featuremaps.web.limits import LOOPBACK_HOSTS
    from featuremaps.web.server import server_config
    from featuremaps.web.service import ExplorerSettings

    hosts = tuple(dict.fromkeys([*LOOPBACK_HOSTS, *([host] if host not in ("0.0.0.0", "::") else []),
                                 *(allowed_host or [])]))
    settings = ExplorerSettings(model=model, checkpoint=str(checkpoint) if checkpoint else None,
                                store=str(store) if store else None, max_upload_bytes=max_upload_mb * 1024 * 1024,
                                concurrency=concurrency, queue=queue, allowed_hosts=hosts,
                                max_parameters=max_parameters)
    status.step("building the explorer" + (f" and reading the store {store}" if store else ""))
    application = create_app(settings)
    status.done(f"ready on http://{host}:{port}/")
    typer.echo(f"featuremaps explorer on http://{host}:{port}/  (API docs: /docs; Ctrl+C stops)")
    server = uvicorn.Server(server_config(application, host, port))
    received: list[int] = []
    stop = server.handle_exit

    def handle_exit(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop(signum, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign,assignment]  # to know why the server stopped
    server.run()  # a clean shutdown: the app's lifespan removes its temporary microscope site
    if received:  # stopped by a signal: say so in the exit status (even where SIGINT was ignored at start)
        raise typer.Exit(130 if received[0] == signal.SIGINT else 143)
