"""The ISBNdb leaf worker: author bibliographies, book and bulk look-ups (see app.App)."""

from .app import App, build_app
from .isolate import Isolate

__all__ = ["App", "Isolate", "build_app"]
