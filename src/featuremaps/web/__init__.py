"""The web explorer: a FastAPI app (``create_app``) and one static page."""

from featuremaps.web.app import create_app
from featuremaps.web.service import ExplorerSettings

__all__ = ["ExplorerSettings", "create_app"]
