"""The web explorer: ``create_app()`` builds a FastAPI app with a JSON API and one static page.

Stable routes: ``GET /api/health`` and ``POST /api/images`` (multipart field ``file``). The
OpenAPI schema is at ``/openapi.json`` and its docs at ``/docs`` (Swagger UI served from the
swagger-ui-py package, Swagger UI 5, so nothing comes from a CDN). The page is ``/`` with its files
under ``/static``; with a store, its microscope site is under ``/microscope/``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from featuremaps.errors import ImageError
from featuremaps.features.graph import forward_passes
from featuremaps.version import __version__
from featuremaps.web.limits import Busy, HostCheck, JsonBodyCheck, UploadLimit, WorkLimiter, short
from featuremaps.web.schemas import (
    ConfigResponse,
    ConvRequest,
    ConvResponse,
    Health,
    LayerRow,
    LineageRequest,
    LineageResponse,
    MapsRequest,
    MapsResponse,
    OverlayRequest,
    OverlayResponse,
    PredictRequest,
    PredictResponse,
    SceneRequest,
    SceneResponse,
    SegmentRequest,
    SegmentResponse,
    Uploaded,
    VisualizeRequest,
    VisualizeResponse,
    describe_invalid,
)
from featuremaps.web.service import Explorer, ExplorerSettings, error_status

logger = logging.getLogger("featuremaps.web")

__all__ = ["create_app"]


def _static_dir() -> Path:
    return Path(str(resources.files("featuremaps") / "web" / "static"))


def create_app(settings: ExplorerSettings | None = None) -> FastAPI:
    """A new app with its own state (caches, work queue); nothing is shared between apps."""
    settings = settings or ExplorerSettings()
    explorer = Explorer(settings)
    # Two pools, so a cheap request (a playground setting, a layer list) never waits behind heavy ones
    # (visualisations, lineage): each kind has its own slots and its own queue.
    limiters = {"light": WorkLimiter(settings.concurrency, settings.queue),
                "heavy": WorkLimiter(settings.concurrency, settings.queue)}
    site = _microscope_site(settings.store) if settings.store else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:  # the server stops (Ctrl-C, SIGTERM): the microscope's temporary site goes with it
            if site is not None:
                shutil.rmtree(site, ignore_errors=True)

    app = FastAPI(title="featuremaps explorer", version=__version__, docs_url=None, redoc_url=None,
                  description="Feature maps of convolution layers and real CNNs, recognition and segmentation.",
                  lifespan=lifespan)
    app.state.microscope_site = site
    app.state.explorer, app.state.limiters = explorer, limiters

    async def work(job: Any, kind: str = "heavy") -> Any:
        def run() -> Any:
            with forward_passes():  # beside other requests' model work (see featuremaps.features.graph)
                return job()

        run.__qualname__ = getattr(job, "__qualname__", "a request")
        try:
            return await limiters[kind].run(run)
        except Busy as busy:
            raise _HTTPError(503, "the server is busy; retry shortly",
                             {"Retry-After": str(busy.retry_after)}) from None
        except Exception as error:  # noqa: BLE001 - every failure becomes a JSON error
            status = error_status(error)
            if status >= 500:  # a bug, not the client's doing: the traceback goes to the server log
                logger.exception("internal error in %s", getattr(job, "__qualname__", "a request"))
                raise _HTTPError(500, f"internal error ({type(error).__name__}); the server log has the details") \
                    from error
            raise _HTTPError(status, str(error)) from error

    @app.exception_handler(_HTTPError)
    async def http_error(_request: Request, error: _HTTPError) -> JSONResponse:
        return JSONResponse({"error": short(error.message)}, status_code=error.status, headers=error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def no_route(request: Request, error: StarletteHTTPException) -> JSONResponse:
        """404, 405 and the like in the same ``{"error": ...}`` form as every other answer."""
        reason = {404: "no such route", 405: "this route does not take"}.get(error.status_code, str(error.detail))
        return JSONResponse({"error": f"{reason} {request.method} {short(request.url.path)}"},
                            status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        """One line per bad field, each naming the field; the values sent are never echoed whole."""
        return JSONResponse({"error": short(describe_invalid(error.errors()))}, status_code=422)

    @app.get("/api/health")
    async def health() -> Health:
        return Health(status="ok", version=__version__,
                      load={kind: limiter.load for kind, limiter in limiters.items()})

    @app.get("/api/config")
    async def config() -> ConfigResponse:
        return explorer.model_list()

    @app.post("/api/images")
    async def upload(file: UploadFile = File(...)) -> Uploaded:
        data = await file.read()
        name = f"the upload {short(file.filename or 'without a name')!r} ({len(data):,} bytes)"

        def add() -> Uploaded:
            try:
                return explorer.add_image(data)
            except ImageError as error:  # name the upload by its file name, not "<N bytes>"
                raise ImageError(name, error.reason) from None

        return await work(add, "light")

    @app.get("/api/images/{image_id}.png")
    async def image_png(image_id: str) -> Response:
        data = await work(lambda: explorer.image_png(image_id), "light")
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.post("/api/conv")
    async def conv(request: ConvRequest) -> ConvResponse:
        return await work(lambda: explorer.conv(request), "light")

    @app.post("/api/scene")
    async def scene(request: SceneRequest) -> SceneResponse:
        return await work(lambda: explorer.scene(request), "light")

    @app.get("/api/models/{name}/layers")
    async def layers(name: str) -> list[LayerRow]:
        return await work(lambda: explorer.layers(name), "light")

    @app.post("/api/maps")
    async def maps(request: MapsRequest) -> MapsResponse:
        return await work(lambda: explorer.maps(request))

    @app.post("/api/overlay")
    async def overlay(request: OverlayRequest) -> OverlayResponse:
        return await work(lambda: explorer.overlay(request))

    @app.post("/api/lineage")
    async def lineage(request: LineageRequest) -> LineageResponse:
        return await work(lambda: explorer.lineage(request))

    @app.post("/api/visualize")
    async def visualize(request: VisualizeRequest) -> VisualizeResponse:
        return await work(lambda: explorer.visualize(request))

    @app.post("/api/predict")
    async def predict(request: PredictRequest) -> PredictResponse:
        return await work(lambda: explorer.predict(request))

    @app.post("/api/segment")
    async def segment(request: SegmentRequest) -> SegmentResponse:
        return await work(lambda: explorer.segment(request))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="featuremaps API",
                                   swagger_js_url="/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/swagger/swagger-ui.css", swagger_favicon_url="/static/favicon.svg")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(_static_dir() / "index.html")

    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")
    try:  # Swagger UI 5 (it reads OpenAPI 3.1, which FastAPI writes), from the swagger-ui-py wheel: no CDN
        swagger = resources.files("swagger_ui") / "static"
        app.mount("/swagger", StaticFiles(directory=str(swagger)), name="swagger")
    except (ImportError, ModuleNotFoundError):  # /docs then shows no page; /openapi.json still works
        pass
    if settings.store and site is not None:
        from featuremaps.batch import Store

        explorer.attach_microscope(site, str(Store(settings.store).manifest().config["model"]))
        app.mount("/microscope", StaticFiles(directory=site, html=True), name="microscope")
    app.add_middleware(JsonBodyCheck)  # inside UploadLimit: the body it reads whole is already capped
    app.add_middleware(UploadLimit, max_bytes=settings.max_upload_bytes, max_json_bytes=settings.max_json_bytes)
    app.add_middleware(HostCheck, allowed=settings.allowed_hosts)  # outermost: DNS rebinding never reaches a route
    return app


def _microscope_site(store: str) -> Path:
    """The store's microscope, built into a new temporary folder (no links to the server's files);
    the folder is removed if building fails, and when the app shuts down."""
    from featuremaps.batch.microscope import build_microscope

    site = Path(tempfile.mkdtemp(prefix="featuremaps-microscope-"))
    try:
        build_microscope(store, site, link_images=False)
    except BaseException:
        shutil.rmtree(site, ignore_errors=True)
        raise
    return site


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
